"""How metrics are computed (threshold, perplexity, distinct-n tokenizer)."""

from __future__ import annotations

from pydantic import Field

from xdetox.config.base import _Strict


class MetricsConfig(_Strict):
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    # Conditional perplexity of each continuation given its prompt under the base model.
    perplexity: bool = True
    max_perplexity: float = Field(1e4, gt=0.0)  # XG drops ppl >= 1e4 as degenerate
    # Tokenizer for distinct-n: "model" (the base model's), "whitespace", or a tokenizer path/id.
    diversity_tokenizer: str = "model"
