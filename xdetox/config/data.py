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
    # "toy" (built by the package), a local folder, gs://bucket/prefix, or a Hugging Face id.
    base: str = "toy"


class LengthFilter(_Strict):
    # Tokens by default: the reference counted characters, which keeps different amounts of text
    # for scripts with different characters per token. "chars" reproduces the reference.
    unit: Literal["tokens", "chars"] = "tokens"
    max_length: int = Field(256, gt=0)


class DataConfig(_Strict):
    preference: str = "toy"  # toxicity_pairwise folder/file, gs:// prefix, or "toy"
    prompts: str = "toy"  # prompts file/folder, gs:// prefix, or "toy"
    languages: list[str] = Field(default_factory=lambda: list(XG_LANGUAGES), min_length=1)
    max_prompts_per_language: int | None = Field(None, gt=0)
    max_pairs: int | None = Field(None, gt=0)
    eval_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    length_filter: LengthFilter = Field(default_factory=LengthFilter)
    seed: int = 0
