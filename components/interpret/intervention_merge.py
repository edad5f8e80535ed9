"""Combine per-language intervention sweeps into one table, plot and summary.

On a cluster the sweep runs as one task per language (a ParallelFor), each writing an
``intervention`` folder for its language; this stage joins them into exactly what one task over
all languages would have written: per-language rows as they are, and an ``ALL`` row per offset
recomputed as the mean over the languages that have a value (a missing value stays missing).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xdetox.components.interpret.intervention_table import (
    COLUMNS,
    GENERATIONS_FILE,
    SUMMARY_FILE,
    TABLE_FILE,
    write_intervention,
)
from xdetox.components.interpret.prompt_selection import ALL_LANGUAGES
from xdetox.components.interpret.tables import mean_or_none
from xdetox.errors import DataError
from xdetox.files import read_jsonl

# Summary keys every part must agree on: parts of different sweeps must not be mixed.
_SAME = ("model_type", "n_neurons", "offsets", "attribute", "generation")


def _number(text: str, column: str, path: Path, line: int, kind: type) -> Any:
    if text == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        raise DataError(f"column {column!r}: not a number: {text!r}", path, line) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"column {column!r}: not a finite number: {text!r}", path, line)
    return value


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Per-language rows of one part's ``intervention.csv`` (its ``ALL`` rows are dropped)."""
    if not path.is_file():
        raise DataError("file not found", path)
    rows = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"missing column(s) {', '.join(map(repr, missing))}", path, 1)
        for row in reader:
            line = reader.line_num
            if row["language"] == ALL_LANGUAGES:
                continue
            offset = _number(row["offset"], "offset", path, line, float)
            if offset is None:
                raise DataError("empty 'offset'", path, line)
            rows.append(
                {
                    "offset": offset,
                    "language": row["language"],
                    "avg_toxicity": _number(row["avg_toxicity"], "avg_toxicity", path, line, float),
                    "n": _number(row["n"], "n", path, line, int) or 0,
                    "n_missing": _number(row["n_missing"], "n_missing", path, line, int) or 0,
                }
            )
    return rows


def _read_summary(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON ({exc})", path) from None
    missing = [k for k in (*_SAME, "languages", "config") if k not in data]
    if missing:
        raise DataError(f"missing key(s) {', '.join(map(repr, missing))}", path)
    return data


def merge_interventions(part_dirs: Sequence[str | Path], output_dir: str | Path) -> dict[str, Any]:
    """Join the ``intervention`` folders in ``part_dirs`` (disjoint languages, same sweep) into
    ``output_dir``; return the merged summary. Languages come out sorted."""
    if not part_dirs:
        raise DataError("no intervention results to combine", output_dir)
    parts = []
    for folder in map(Path, part_dirs):
        summary = _read_summary(folder / SUMMARY_FILE)
        parts.append((folder, summary, _read_rows(folder / TABLE_FILE)))
    first_dir, first, _ = parts[0]
    owner: dict[str, Path] = {}
    for folder, summary, _ in parts:
        for key in _SAME:
            if summary[key] != first[key]:
                raise DataError(
                    f"{key!r} differs from {first_dir / SUMMARY_FILE} "
                    f"({summary[key]!r} vs {first[key]!r}); not parts of one sweep",
                    folder / SUMMARY_FILE,
                )
        for lang in summary["languages"]:
            if lang in owner:
                raise DataError(f"language {lang!r} also in {owner[lang]}", folder / SUMMARY_FILE)
            owner[lang] = folder

    languages = sorted(owner)
    offsets = [float(o) for o in first["offsets"]]
    by_key = {(r["offset"], r["language"]): r for _, _, rows in parts for r in rows}
    rows: list[dict[str, Any]] = []
    for offset in offsets:
        offset_rows = []
        for lang in languages:
            row = by_key.get((offset, lang))
            if row is None:
                raise DataError(
                    f"no row for offset {offset:g}, language {lang!r}", owner[lang] / TABLE_FILE
                )
            offset_rows.append(row)
        rows.extend(offset_rows)
        rows.append(
            {
                "offset": offset,
                "language": ALL_LANGUAGES,
                "avg_toxicity": mean_or_none(r["avg_toxicity"] for r in offset_rows),
                "n": sum(r["n"] for r in offset_rows),
                "n_missing": sum(r["n_missing"] for r in offset_rows),
            }
        )
    records = []
    for lang in languages:
        records.extend(read_jsonl(owner[lang] / GENERATIONS_FILE))
    config = dict(first["config"])
    config["languages"] = languages
    return write_intervention(
        output_dir,
        rows,
        records,
        languages=languages,
        offsets=offsets,
        n_neurons=first["n_neurons"],
        model_type=first["model_type"],
        generation=first["generation"],
        config=config,
    )
