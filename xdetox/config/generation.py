"""The sampling protocol used to generate continuations."""

from __future__ import annotations

from pydantic import Field

from xdetox.config.base import _Strict


class GenerationConfig(_Strict):
    """Sampling protocol. Defaults are XG's: 25 samples, T 0.9, top-p 0.8, 20 new tokens."""

    n: int = Field(25, gt=0)
    temperature: float = Field(0.9, ge=0.0)
    top_p: float = Field(0.8, gt=0.0, le=1.0)
    max_new_tokens: int = Field(20, gt=0)
    seed: int = 0
    batch_size: int = Field(64, gt=0)  # sequences per forward pass (transformers backend)
