"""The tiny DPO task the DPO test files share: four prompts, one kind and one rude completion.

A random GPT-2 learns to prefer the kind completion within a few steps at a high learning rate,
so training, evaluation, checkpoints and resume can all be checked in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiny_models import bpe_tokenizer, save_tiny_lm

from xdetox.config import TrainingConfig

PROMPTS = ["the weather today is", "my neighbour said", "people often write", "in the morning we"]
CHOSEN, REJECTED = " nice kind words", " bad rude words"


def save_dpo_base(folder: str | Path) -> Path:
    """A tiny random GPT-2 with a byte-level BPE tokenizer trained on the task's sentences."""
    tok = bpe_tokenizer([*PROMPTS, CHOSEN, REJECTED] * 3)
    return save_tiny_lm(
        folder, tok, n_positions=128, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id
    )


def fast_dpo_config(**overrides: Any) -> TrainingConfig:
    """A few fast steps with a high learning rate and a small LoRA, so a tiny model visibly
    learns; ``overrides`` are ``training`` keys (steps, eval and save intervals, ...)."""
    data: dict[str, Any] = {
        "learning_rate": 5e-3,
        "warmup_steps": 0,
        "optim": "adamw_torch",
        "per_device_train_batch_size": 4,
        "logging_steps": 1,
        "early_stopping_patience": 0,
        "gradient_checkpointing": False,
        "max_prompt_length": 16,
        "max_length": 64,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
    }
    data.update(overrides)
    return TrainingConfig.model_validate(data)
