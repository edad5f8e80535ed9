"""Read score files (JSON lines, ``xdetox.records.SCORE_FIELDS``) into one pandas table.

Every record is checked here, once, so that the metric functions can trust their input and a bad
line is reported as ``file:line: what is wrong``. A null score stays missing (NaN in the table):
it is never turned into 0, and the metrics count and exclude it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import get_args

import pandas as pd
from tqdm.auto import tqdm

from xdetox.components.metrics.columns import LEGACY_PROTOCOL
from xdetox.config import ScoringConfig
from xdetox.errors import DataError
from xdetox.files import iter_jsonl, require_fields
from xdetox.records import SCORE_FIELDS

EMPTY_TEXT_POLICIES: tuple[str, ...] = get_args(ScoringConfig.model_fields["empty_text"].annotation)

# metrics.group_by → the table column whose values name a prompt unit.
GROUP_BY_COLUMNS: dict[str, str] = {"prompt_id": "prompt_id", "prompt_text": "prompt"}

SCORE_PREFIX = "score:"
"""Score columns of the table are named ``score:<ATTRIBUTE>`` (float, NaN when missing)."""


def score_column(attribute: str) -> str:
    return f"{SCORE_PREFIX}{attribute}"


def prompt_units(table: pd.DataFrame, group_by: str = "prompt_id") -> pd.Series:
    """The prompt unit of each sample under ``metrics.group_by``: its ``prompt_id``, or its
    prompt text (XG grouped by text, so two records with the same prompt text are one prompt;
    ``xg/eval/metric_toxicity.py`` of Li, Yong & Bach 2024, arXiv:2406.16235)."""
    if group_by not in GROUP_BY_COLUMNS:
        raise ValueError(f"unknown group_by {group_by!r} (known: {', '.join(GROUP_BY_COLUMNS)})")
    return table[GROUP_BY_COLUMNS[group_by]].astype(str)


def _check_str(record: dict, field: str, path: Path, line: int, *, allow_empty: bool) -> str:
    value = record[field]
    if not isinstance(value, str):
        raise DataError(f"field {field!r} must be a string, got {type(value).__name__}", path, line)
    if not allow_empty and not value.strip():
        raise DataError(f"field {field!r} is empty", path, line)
    return value


def _check_scores(record: dict, path: Path, line: int) -> dict[str, float]:
    scores = record["scores"]
    if not isinstance(scores, dict):
        raise DataError(
            f"field 'scores' must be an object, got {type(scores).__name__}", path, line
        )
    out: dict[str, float] = {}
    for name, value in scores.items():
        if value is None:
            out[name] = math.nan  # the scorer could not score it: missing, never 0
            continue
        # bool is an int subclass in Python; a true/false "score" is a producer bug.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DataError(
                f"scores.{name} must be a number or null, got {type(value).__name__}", path, line
            )
        if not (0.0 <= float(value) <= 1.0):
            # Thresholds (0.5) only make sense on probabilities; a logit here is a scorer bug.
            raise DataError(f"scores.{name} = {value} is outside [0, 1]", path, line)
        out[name] = float(value)
    return out


def read_scores(score_files: Iterable[str | Path]) -> pd.DataFrame:
    """All samples of the given score files as one table.

    Columns: ``model, language, prompt_id, prompt, sample_index, text, scorer, empty_text`` (the
    ``scoring.empty_text`` policy; ``scorer`` for files written before it existed), ``kind``
    (the prompt's set, e.g. insult or neutral; None when the prompts named none) and one
    ``score:<ATTRIBUTE>`` float column per attribute seen in any record (NaN = missing).
    ``prompt_id`` is kept as a string so ids written as 7 and "7" name the same prompt.

    A sample (model, language, prompt_id, sample_index) seen twice is an error: a rerun that
    appended to its output (as XG's generation script did) would otherwise count twice.
    """
    rows: list[dict] = []
    seen: dict[tuple[str, str, str, int], str] = {}
    files = [Path(p) for p in score_files]
    if not files:
        raise DataError("no score files given")
    for path in files:
        for line, record in tqdm(
            iter_jsonl(path), desc=f"read {path.name}", unit=" lines", disable=None, leave=False
        ):
            require_fields(record, SCORE_FIELDS, path, line)
            model = _check_str(record, "model", path, line, allow_empty=False)
            language = _check_str(record, "language", path, line, allow_empty=False)
            scorer = _check_str(record, "scorer", path, line, allow_empty=False)
            prompt = _check_str(record, "prompt", path, line, allow_empty=True)
            text = _check_str(record, "text", path, line, allow_empty=True)
            prompt_id = record["prompt_id"]
            if isinstance(prompt_id, bool) or not isinstance(prompt_id, str | int):
                raise DataError("field 'prompt_id' must be a string or an integer", path, line)
            sample_index = record["sample_index"]
            if isinstance(sample_index, bool) or not isinstance(sample_index, int):
                raise DataError("field 'sample_index' must be an integer", path, line)
            key = (model, language, str(prompt_id), sample_index)
            if key in seen:
                raise DataError(
                    f"duplicate sample (model={model!r}, language={language!r}, "
                    f"prompt_id={prompt_id!r}, sample_index={sample_index}); "
                    f"first seen at {seen[key]}",
                    path,
                    line,
                )
            seen[key] = f"{path}:{line}"
            # Score files written before scoring.empty_text existed were scored the one way.
            empty_text = record.get("empty_text", LEGACY_PROTOCOL["empty_text"])
            if empty_text not in EMPTY_TEXT_POLICIES:
                raise DataError(
                    f"field 'empty_text' must be one of {', '.join(EMPTY_TEXT_POLICIES)}, "
                    f"got {empty_text!r}",
                    path,
                    line,
                )
            row = {
                "model": model,
                "language": language,
                "prompt_id": str(prompt_id),
                "prompt": prompt,
                "sample_index": sample_index,
                "text": text,
                "scorer": scorer,
                "empty_text": empty_text,
                # the prompt's set (insult, neutral, ...), when the prompts named one
                "kind": record["kind"] if isinstance(record.get("kind"), str) else None,
            }
            for name, value in _check_scores(record, path, line).items():
                row[score_column(name)] = value
            rows.append(row)
    if not rows:
        raise DataError("no samples in the score files: " + ", ".join(str(p) for p in files))
    table = pd.DataFrame(rows)
    for column in table.columns:
        if column.startswith(SCORE_PREFIX):
            # A record whose scores lack the attribute altogether is missing too (NaN, not 0).
            table[column] = table[column].astype(float)
    return table


def score_attributes(table: pd.DataFrame) -> list[str]:
    """Attribute names that have a score column in ``table`` (in column order)."""
    return [c[len(SCORE_PREFIX) :] for c in table.columns if c.startswith(SCORE_PREFIX)]
