"""One training stage for every method (DPO, SFT→DPO, PPO, RLOO, GRPO): dispatch, launch over
several GPUs, checkpoints and resume, model loading (LoRA/QLoRA/full), training curves."""
