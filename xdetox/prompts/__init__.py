"""Prompt sets the project wrote for runs on real models (see ``README.md`` beside this file).

Two shipped sources, named like the toy data so that every stage resolves them the same way
(:mod:`xdetox.toy.data_sources`):

* ``real``: evaluation openings, 48 per language in en, de, es, fr, ru, each marked ``kind``
  ``insult`` (begins or invites an insult) or ``neutral``;
* ``real-train``: 165 English openings that tend to draw an insult, for self-generated
  preference pairs (English-only training, as in Li, Yong & Bach 2024, arXiv:2406.16235).

The openings follow RealToxicityPrompts (Gehman et al. 2020, arXiv:2009.11462): sentence
beginnings that a model may continue toxically. A first Gemma 3 270M run found that ordinary
openings leave non-English toxicity at the scorers' floor, hence the insult openings.
"""

from __future__ import annotations

from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent
PROMPT_LANGUAGES: tuple[str, ...] = ("de", "en", "es", "fr", "ru")

EVAL_SOURCE = "real"
TRAIN_SOURCE = "real-train"


def eval_prompts_path() -> Path:
    """Evaluation prompts (JSON lines: prompt_id, language, prompt, kind)."""
    return PROMPTS_DIR / "eval.jsonl"


def train_prompts_path() -> Path:
    """English training prompts (JSON lines: prompt_id, language, prompt, kind)."""
    return PROMPTS_DIR / "train_en.jsonl"


# source name → its file; disjoint from the evaluation set by construction (tests check it)
PROMPT_SOURCES = {EVAL_SOURCE: eval_prompts_path, TRAIN_SOURCE: train_prompts_path}


def shipped_prompts(source: object) -> Path | None:
    """The shipped file when ``source`` names a prompt set (``real``, ``real-train``), else None.

    A ``Path`` never does: ``Path("real")`` is a file or folder of that name.
    """
    if not isinstance(source, str):
        return None
    path_of = PROMPT_SOURCES.get(source.strip())
    return path_of() if path_of is not None else None


__all__ = [
    "EVAL_SOURCE",
    "PROMPTS_DIR",
    "PROMPT_LANGUAGES",
    "PROMPT_SOURCES",
    "TRAIN_SOURCE",
    "eval_prompts_path",
    "shipped_prompts",
    "train_prompts_path",
]
