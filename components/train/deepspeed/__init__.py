"""accelerate/DeepSpeed launch configs (infrastructure), kept apart from hyperparameter recipes."""
