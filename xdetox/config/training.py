"""Preference-tuning hyperparameters (DPO), kept apart from infrastructure."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict


class LoraConfig(_Strict):
    r: int = Field(64, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # "auto" picks the preset for the model's architecture (components/dpo/lora_targets.py).
    target_modules: list[str] | Literal["auto"] = "auto"


class TrainingConfig(_Strict):
    """DPO hyperparameters. Defaults are the XG paper's recipe (REFERENCE.md §3)."""

    method: Literal["dpo"] = "dpo"
    beta: float = Field(0.1, gt=0.0)
    learning_rate: float = Field(1e-5, gt=0.0)
    lr_scheduler_type: str = "constant_with_warmup"
    warmup_steps: int = Field(150, ge=0)
    optim: str = "rmsprop"
    max_grad_norm: float = Field(10.0, gt=0.0)
    per_device_train_batch_size: int = Field(4, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    num_train_epochs: float = Field(5.0, gt=0.0)
    max_steps: int = -1
    max_prompt_length: int = Field(64, gt=0)
    max_length: int = Field(256, gt=0)
    eval_steps: int = Field(25, gt=0)
    save_steps: int = Field(25, gt=0)
    logging_steps: int = Field(5, gt=0)
    early_stopping_patience: int = Field(10, ge=0)  # 0 turns early stopping off
    gradient_checkpointing: bool = True
    seed: int = 0
    # lora: adapters on a frozen base; full: every weight (XG's mGPT and BLOOM-1.7B runs).
    mode: Literal["lora", "full"] = "lora"
    lora: LoraConfig = Field(default_factory=LoraConfig)
