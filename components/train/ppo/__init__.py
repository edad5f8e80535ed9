"""Online RL detoxification: a compact PPO with resume, TRL RLOO/GRPO wrappers, reward functions."""
