"""The embedded toy world: shipped template data, a tiny model the package trains, in seconds.

It lets the whole pipeline run on a laptop with nothing downloaded. See ``data/README.md``.
"""

from __future__ import annotations

from pathlib import Path

from xdetox.toy.model import (
    build_toy_model,
    ensure_toy_model,
    load_toy_tokenizer,
    toy_model_key,
    toy_model_path,
)

TOY_DATA_DIR = Path(__file__).resolve().parent / "data"
TOY_LANGUAGES: tuple[str, ...] = ("en", "de", "es", "fr", "ru", "zh-hans")


def toy_prompts_path() -> Path:
    """Evaluation prompts (JSON lines: prompt_id, language, prompt)."""
    return TOY_DATA_DIR / "prompts.jsonl"


def toy_pairs_dir() -> Path:
    """English preference pairs in the toxicity_pairwise format (split_*.jsonl)."""
    return TOY_DATA_DIR / "pairs"


def toy_corpus_path() -> Path:
    """The toy model's training text (JSON lines: language, text, toxic)."""
    return TOY_DATA_DIR / "corpus.jsonl"


__all__ = [
    "TOY_DATA_DIR",
    "TOY_LANGUAGES",
    "build_toy_model",
    "ensure_toy_model",
    "load_toy_tokenizer",
    "toy_corpus_path",
    "toy_model_key",
    "toy_model_path",
    "toy_pairs_dir",
    "toy_prompts_path",
]
