"""Labelled texts for the toxicity probe: Jigsaw ``train.csv``, a plain ``text,label`` CSV, or
scored generations (JSON lines as the score stage writes them).

Scored generations let a probe be trained where no Jigsaw data is at hand: a model's own samples,
labelled by a classifier (e.g. the Jigsaw BiLSTM, which was trained on the same comments XG's
probe was) at a score threshold.

Read with the ``csv`` module rather than pandas so that an error names the line a record starts
on (Jigsaw comments hold newlines inside quoted fields, so records and lines differ).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from xdetox.errors import DataError

JIGSAW_LABELS: tuple[str, ...] = (
    "toxic",
    "severe_toxic",
    "obscene",
    "threat",
    "insult",
    "identity_hate",
)
UNLABELLED = "-1"  # Jigsaw's test_labels.csv marks rows not used for scoring with -1


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: int  # 1 toxic, 0 not
    line: int  # where the record starts, for error messages


@dataclass(frozen=True)
class ProbeData:
    examples: list[LabelledText]
    format: Literal["jigsaw", "text_label", "scored"]
    unlabelled: int  # rows skipped: every label -1 (Jigsaw), or no score / empty text (scored)


def _label(value: str, column: str, path: Path, line: int) -> int | None:
    value = value.strip()
    if value == UNLABELLED:
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")  # not a number: refused below
    if number not in (0.0, 1.0):
        raise DataError(f"field {column!r}: expected 0 or 1, got {value!r}", path, line)
    return int(number)


SCORED_SUFFIXES = (".jsonl", ".json")
TOXICITY = "TOXICITY"


def read_probe_data(
    path: str | Path, label_mode: Literal["toxic", "any"] = "toxic", threshold: float = 0.5
) -> ProbeData:
    """Labelled texts from any supported file: JSON lines are scored generations
    (:func:`read_scored_jsonl`), anything else a CSV (:func:`read_labelled_csv`)."""
    if Path(path).suffix.lower() in SCORED_SUFFIXES:
        return read_scored_jsonl(path, label_mode, threshold)
    return read_labelled_csv(path, label_mode)


def read_scored_jsonl(
    path: str | Path, label_mode: Literal["toxic", "any"] = "toxic", threshold: float = 0.5
) -> ProbeData:
    """Generations with scores (``text`` and ``scores``: attribute → score or null), labelled
    toxic when TOXICITY (``label_mode`` "toxic") or any attribute ("any") is ≥ ``threshold``.

    The text is the continuation alone, the part the scorer judged. Records whose deciding
    scores are null (a scorer that does not cover the language, an empty sample) are skipped and
    counted, never read as non-toxic.
    """
    from xdetox.files import iter_jsonl, require_fields

    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    examples: list[LabelledText] = []
    unlabelled = 0
    for line, record in iter_jsonl(path):
        require_fields(record, ("text", "scores"), path, line)
        scores = record["scores"] or {}
        if not isinstance(scores, dict):
            raise DataError("field 'scores': expected an object", path, line)
        if label_mode == "toxic":
            if TOXICITY not in scores and record["scores"] is not None:
                raise DataError(f"field 'scores' has no {TOXICITY!r}", path, line)
            values = [scores.get(TOXICITY)]
        else:
            values = list(scores.values())
        values = [v for v in values if v is not None]
        text = str(record["text"])
        if not values or not text.strip():
            unlabelled += 1
            continue
        examples.append(LabelledText(text, int(max(values) >= threshold), line))
    if not examples:
        raise DataError("no scored, non-empty texts", path)
    return ProbeData(examples, "scored", unlabelled)


def read_labelled_csv(path: str | Path, label_mode: Literal["toxic", "any"] = "toxic") -> ProbeData:
    """Texts and binary labels, in file order.

    Jigsaw format (header has ``comment_text``): toxic = the ``toxic`` column (``label_mode``
    "toxic", what gives XG's counts) or any of the six label columns ("any"). Plain format:
    ``text`` and ``label`` columns. Rows whose labels are -1 (Jigsaw test labels) are skipped
    and counted; anything else malformed raises :class:`DataError` naming file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    examples: list[LabelledText] = []
    unlabelled = 0
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            if not header:
                raise DataError("empty file (no header)", path, 1)
            if "comment_text" in header:
                fmt: Literal["jigsaw", "text_label"] = "jigsaw"
                text_col = "comment_text"
                label_cols = list(JIGSAW_LABELS) if label_mode == "any" else ["toxic"]
            elif "text" in header and "label" in header:
                fmt, text_col, label_cols = "text_label", "text", ["label"]
            else:
                raise DataError(
                    "expected Jigsaw columns (comment_text, toxic, ...) or text,label; got "
                    + ", ".join(header),
                    path,
                    1,
                )
            missing = [c for c in label_cols if c not in header]
            if missing:
                raise DataError(f"missing column(s) {', '.join(map(repr, missing))}", path, 1)
            line_end = reader.line_num
            for row in reader:
                line, line_end = line_end + 1, reader.line_num
                if None in row:
                    raise DataError(f"more fields than the {len(header)} columns", path, line)
                if None in row.values():
                    raise DataError(f"fewer fields than the {len(header)} columns", path, line)
                text = row[text_col]
                if not text.strip():
                    raise DataError(f"empty {text_col!r}", path, line)
                labels = [_label(row[c], c, path, line) for c in label_cols]
                if all(v is None for v in labels):
                    unlabelled += 1
                    continue
                if any(v is None for v in labels):
                    raise DataError("some labels are -1 and others not", path, line)
                examples.append(LabelledText(text, int(any(labels)), line))
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 ({exc.reason})", path) from None
    except csv.Error as exc:
        raise DataError(f"malformed CSV ({exc})", path, reader.line_num) from None
    if not examples:
        raise DataError("no labelled rows", path)
    return ProbeData(examples, fmt, unlabelled)
