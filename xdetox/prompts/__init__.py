"""Prompt sets the project wrote for runs on real models (see ``README.md`` beside this file).

Two shipped sources, named like the toy data so that every stage resolves them the same way
(:mod:`xdetox.toy.data_sources`):

* ``real``: evaluation openings in the 17 languages of XG (48 per language in en, de, es, fr,
  ru; 24 in each of the other 12), each marked ``kind`` ``insult`` (begins or invites an
  insult) or ``neutral``;
* ``real-train``: 165 English openings that tend to draw an insult, for self-generated
  preference pairs (English-only training, as in Li, Yong & Bach 2024, arXiv:2406.16235);
* ``real-parallel``: 40 English sentences (26 everyday, 14 insults) with their de, es, fr and ru
  translations, for the cross-lingual alignment stage (a data source of kind ``parallel``).

The openings follow RealToxicityPrompts (Gehman et al. 2020, arXiv:2009.11462): sentence
beginnings that a model may continue toxically. A first Gemma 3 270M run found that ordinary
openings leave non-English toxicity at the scorers' floor, hence the insult openings.
"""

from __future__ import annotations

from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent
# The languages of the parallel sentences (and of the first, larger evaluation sets).
PROMPT_LANGUAGES: tuple[str, ...] = ("de", "en", "es", "fr", "ru")

EVAL_SOURCE = "real"
TRAIN_SOURCE = "real-train"
PARALLEL_SOURCE = "real-parallel"


def eval_prompts_path() -> Path:
    """Evaluation prompts (JSON lines: prompt_id, language, prompt, kind)."""
    return PROMPTS_DIR / "eval.jsonl"


def train_prompts_path() -> Path:
    """English training prompts (JSON lines: prompt_id, language, prompt, kind)."""
    return PROMPTS_DIR / "train_en.jsonl"


def parallel_path() -> Path:
    """Parallel sentences (JSON lines: id, language, en, text, toxic), English → de/es/fr/ru."""
    return PROMPTS_DIR / "parallel.jsonl"


def shipped_parallel(source: object) -> Path | None:
    """The shipped parallel sentences when ``source`` is ``real-parallel``, else None."""
    if isinstance(source, str) and source.strip() == PARALLEL_SOURCE:
        return parallel_path()
    return None


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
    "PARALLEL_SOURCE",
    "PROMPTS_DIR",
    "PROMPT_LANGUAGES",
    "PROMPT_SOURCES",
    "TRAIN_SOURCE",
    "eval_prompts_path",
    "parallel_path",
    "shipped_parallel",
    "shipped_prompts",
    "train_prompts_path",
]
