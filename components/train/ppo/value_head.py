"""The critic: one ``nn.Linear(d, 1)`` on the policy's last hidden state.

Sharing the policy's trunk (as TRL's old ``AutoModelForCausalLMWithValueHead`` did) costs one
extra matrix-vector product per token instead of a second network. The head is kept apart from
the language model so that the saved policy (full model or LoRA adapter) stays a plain
transformers/PEFT folder that generation and merging load unchanged; the head is saved beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

VALUE_HEAD_FILE = "value_head.safetensors"


def hidden_size(model: nn.Module) -> int:
    """Width of the last hidden state (``hidden_size``, or GPT-2's ``n_embd``)."""
    config = model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("hidden_size", "n_embd", "d_model"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"cannot tell the hidden size of model type {config.model_type!r}")


class ValueHead(nn.Module):
    """Scalar value per position. Small random weights (std 1/sqrt(d+1), zero bias, as in
    OpenAI's lm-human-preferences) so that early values are near 0 and the first returns are
    not swamped by a random critic."""

    def __init__(self, d_model: int):
        super().__init__()
        self.summary = nn.Linear(d_model, 1)
        nn.init.normal_(self.summary.weight, std=1.0 / math.sqrt(d_model + 1))
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # The head runs in fp32 whatever the trunk's dtype: values feed squared losses.
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


def save_value_head(head: ValueHead, folder: str | Path) -> Path:
    path = Path(folder) / VALUE_HEAD_FILE
    save_file({k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()}, path)
    return path


def load_value_head(head: ValueHead, folder: str | Path) -> None:
    state = load_file(str(Path(folder) / VALUE_HEAD_FILE))
    head.load_state_dict(state)
