"""Where the base model, the preference pairs and the evaluation prompts come from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict

XG_LANGUAGES = [
    "ar",
    "cs",
    "de",
    "en",
    "es",
    "fr",
    "hi",
    "id",
    "it",
    "ja",
    "ko",
    "nl",
    "pl",
    "pt",
    "ru",
    "sv",
    "zh-hans",
]


class ModelConfig(_Strict):
    base: str = Field(
        "toy",
        description="the base model: toy (built by the package), a local folder, "
        "gs://bucket/prefix, or a Hugging Face id",
    )


class LengthFilter(_Strict):
    """Pairs longer than ``max_length`` are dropped."""

    # Tokens by default: the reference counted characters, which keeps different amounts of text
    # for scripts with different characters per token.
    unit: Literal["tokens", "chars"] = Field(
        "tokens",
        description="what max_length counts: tokens of the base model's tokenizer, or "
        "characters (as the reference recipe did; it keeps less text for scripts with more "
        "characters per token)",
    )
    max_length: int = Field(256, gt=0, description="longest prompt + continuation kept")


class DataConfig(_Strict):
    """Where the preference pairs and the evaluation prompts come from, and how they are cut."""

    preference: str = Field(
        "toy", description="preference pairs: toxicity_pairwise folder/file, gs:// prefix, or toy"
    )
    prompts: str = Field(
        "toy", description="evaluation prompts: file/folder (RTP-LX, JSONL, CSV), gs://, or toy"
    )
    languages: list[str] = Field(
        default_factory=lambda: list(XG_LANGUAGES),
        min_length=1,
        description="languages evaluated (XG's 17 by default)",
    )
    max_prompts_per_language: int | None = Field(
        None, gt=0, description="seeded sample of prompts per language; None keeps all"
    )
    max_pairs: int | None = Field(
        None, gt=0, description="seeded sample of preference pairs; None keeps all"
    )
    eval_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="share of the pairs held out for evaluation"
    )
    length_filter: LengthFilter = Field(default_factory=LengthFilter)
    seed: int = Field(0, description="seed of the sampling and of the train/eval split")
