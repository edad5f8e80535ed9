"""How metrics are computed (threshold, perplexity, distinct-n tokenizer, bootstrap)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict


class MetricsConfig(_Strict):
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    # Conditional perplexity of each continuation given its prompt.
    perplexity: bool = True
    # causal-conditional: a causal LM, prompt as context, continuation tokens the only targets.
    # xg-seq2seq: XG's approximation with an encoder-decoder (mT5): prompt+continuation and the
    # prompt alone each as encoder input and labels, losses combined (REFERENCE.md §2).
    perplexity_method: Literal["causal-conditional", "xg-seq2seq"] = "causal-conditional"
    # Folder or Hub id of the model that measures perplexity. None: the pipeline's base model
    # (causal-conditional only: a seq2seq method needs a seq2seq model, e.g. google/mt5-xl).
    perplexity_model: str | None = None
    max_perplexity: float = Field(1e4, gt=0.0)  # XG drops ppl >= 1e4 as degenerate
    # Tokenizer for distinct-n: "model" (the base model's), "whitespace", or a tokenizer path/id.
    diversity_tokenizer: str = "model"
    # Paired bootstrap of tuned − base per language (prompts resampled); 0 turns it off.
    bootstrap_samples: int = Field(1000, ge=0)
    bootstrap_seed: int = 0
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
