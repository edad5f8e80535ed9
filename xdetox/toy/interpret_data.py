"""Shipped toy inputs of the interpretability stages (see ``data/interpret/README.md``).

Kept apart from :mod:`xdetox.toy` so that importing these paths never builds the toy model.
"""

from __future__ import annotations

from pathlib import Path

TOY_INTERPRET_DIR = Path(__file__).resolve().parent / "data" / "interpret"


def toy_jigsaw_path() -> Path:
    """Probe training data in the Jigsaw ``train.csv`` format (English toy sentences)."""
    return TOY_INTERPRET_DIR / "train.csv"


def toy_parallel_path() -> Path:
    """English ↔ de/es/fr/ru/zh-hans sentence pairs (JSON lines: id, language, en, text, toxic)."""
    return TOY_INTERPRET_DIR / "parallel.jsonl"


__all__ = ["TOY_INTERPRET_DIR", "toy_jigsaw_path", "toy_parallel_path"]
