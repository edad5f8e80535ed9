"""Supervised fine-tuning (TRL SFTTrainer) and the SFT → DPO recipe."""
