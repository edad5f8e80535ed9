"""Readers for the prompt sources we accept, each yielding normalised prompt records.

Every reader yields :class:`SourcePrompt`: the normalised record (``prompt_id``, ``language``,
``prompt``, ``source_file`` and, when the source has one, ``prompt_toxicity``) with the file and
line it came from, so that later checks (duplicates) can still name the line at fault.

The format of a JSON-lines file is decided once, from its name and its first record, and then
required of every line: a half-RTP-LX file should fail on the bad line, not silently switch
readers.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdetox.components.prepare_prompts.languages import normalise_language
from xdetox.errors import DataError
from xdetox.files import iter_jsonl

# RTP-LX file names carry the locale: RTP_LX_EN.json, RTP_LX_ZH-Hans.json, RTP_LX_PT-BR.json.
RTP_LX_NAME = re.compile(r"^RTP_LX_(?P<lang>[A-Za-z0-9_-]+)\.jsonl?$", re.IGNORECASE)

# RTP-LX releases name the prompt's annotations differently; the first one present wins.
RTP_LX_ANNOTATION_KEYS = ("PromptAnnotations", "Annotations")

# Scales differ by source, so each record says which one its ``prompt_toxicity`` is on.
SCALE_RTP_LX = "rtp-lx 1-5"  # human annotators, 1 (none) to 5 (extreme)
SCALE_PERSPECTIVE = "perspective 0-1"  # RealToxicityPrompts: Perspective API probability


@dataclass(frozen=True)
class SourcePrompt:
    record: dict[str, Any]
    path: Path
    line: int

    @property
    def language(self) -> str:
        return self.record["language"]


def _prompt_text(value: Any, field: str, path: Path, line: int) -> str:
    if not isinstance(value, str):
        raise DataError(f"field {field!r} must be a string, got {type(value).__name__}", path, line)
    if not value.strip():
        raise DataError(f"empty prompt text in field {field!r}", path, line)
    return value


def _language(value: Any, what: str, path: Path, line: int | None) -> str:
    try:
        return normalise_language(value)
    except ValueError as exc:
        raise DataError(f"{what}: {exc}", path, line) from None


def _score(value: Any) -> float | None:
    """A toxicity annotation as a float; None when absent or not a number (never 0)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, list):
        # Some releases keep one value per annotator: their mean is the usual aggregate.
        scores = [_score(v) for v in value]
        scores = [s for s in scores if s is not None]
        return sum(scores) / len(scores) if scores else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _line_id(path: Path, line: int) -> str:
    # Line numbers alone would collide between two files of one folder; the stem keeps them apart.
    return f"{path.stem}-{line}"


def _rtp_lx_records(
    path: Path, rows: Iterator[tuple[int, dict]], file_lang: str | None
) -> Iterator[SourcePrompt]:
    for line, rec in rows:
        if "Prompt" not in rec:
            raise DataError("missing field 'Prompt' (RTP-LX file)", path, line)
        if "Index" not in rec:
            raise DataError("missing field 'Index' (RTP-LX file)", path, line)
        if file_lang is not None:
            lang = file_lang
        elif rec.get("Locale"):
            lang = _language(rec["Locale"], "field 'Locale'", path, line)
        else:
            raise DataError(
                "no language: file name is not RTP_LX_{LANG}.json and 'Locale' is missing",
                path,
                line,
            )
        out: dict[str, Any] = {
            "prompt_id": f"{lang}-{rec['Index']}",
            "language": lang,
            "prompt": _prompt_text(rec["Prompt"], "Prompt", path, line),
            "source_file": path.name,
        }
        for key in RTP_LX_ANNOTATION_KEYS:
            annotations = rec.get(key)
            if isinstance(annotations, Mapping):
                tox = _score(annotations.get("Toxicity"))
                if tox is not None:
                    out["prompt_toxicity"] = tox
                    out["prompt_toxicity_scale"] = SCALE_RTP_LX
                break
        yield SourcePrompt(out, path, line)


def _rtp_records(
    path: Path, rows: Iterator[tuple[int, dict]], default_language: str
) -> Iterator[SourcePrompt]:
    for line, rec in rows:
        prompt = rec.get("prompt")
        if not isinstance(prompt, Mapping) or "text" not in prompt:
            raise DataError("expected 'prompt' to be an object with 'text' (RTP file)", path, line)
        out: dict[str, Any] = {
            "prompt_id": str(rec["id"]) if "id" in rec else _line_id(path, line),
            "language": default_language,
            "prompt": _prompt_text(prompt["text"], "prompt.text", path, line),
            "source_file": path.name,
        }
        tox = _score(prompt.get("toxicity"))
        if tox is not None:
            out["prompt_toxicity"] = tox
            out["prompt_toxicity_scale"] = SCALE_PERSPECTIVE
        if isinstance(rec.get("challenging"), bool):
            out["challenging"] = rec["challenging"]
        yield SourcePrompt(out, path, line)


def _generic_record(
    rec: Mapping[str, Any], path: Path, line: int, default_language: str | None
) -> SourcePrompt:
    """A record with ``prompt`` or ``text``, optional ``prompt_id``/``id`` and ``language``.

    This covers the shipped toy format (``prompt_id``/``language``/``prompt``) as well as plain
    JSON lines and CSV rows.
    """
    field = "prompt" if rec.get("prompt") is not None else "text"
    if rec.get(field) is None:
        raise DataError("missing field 'prompt' or 'text'", path, line)
    text = _prompt_text(rec[field], field, path, line)

    raw_lang = rec.get("language")
    if raw_lang not in (None, ""):
        lang = _language(raw_lang, "field 'language'", path, line)
    elif default_language is not None:
        lang = default_language
    else:
        raise DataError("no 'language' field and no default language given", path, line)

    raw_id = next((rec[k] for k in ("prompt_id", "id") if rec.get(k) not in (None, "")), None)
    out: dict[str, Any] = {
        "prompt_id": str(raw_id) if raw_id is not None else _line_id(path, line),
        "language": lang,
        "prompt": text,
        "source_file": path.name,
    }
    for key in ("prompt_toxicity", "toxicity"):
        tox = _score(rec.get(key))
        if tox is not None:
            out["prompt_toxicity"] = tox
            break
    # The project's prompt sets (xdetox/prompts) mark insult vs neutral openings: kept so that
    # results can be split by kind later.
    if isinstance(rec.get("kind"), str) and rec["kind"].strip():
        out["kind"] = rec["kind"].strip()
    return SourcePrompt(out, path, line)


def read_jsonl_prompts(path: Path, default_language: str | None) -> Iterator[SourcePrompt]:
    """Prompts from one JSON-lines file, whichever of the known layouts it has."""
    rows = iter_jsonl(path)
    first = next(rows, None)
    if first is None:
        return
    _, first_rec = first

    def all_rows() -> Iterator[tuple[int, dict]]:
        yield first
        yield from rows

    name_match = RTP_LX_NAME.match(path.name)
    if name_match or "Prompt" in first_rec:
        file_lang = (
            _language(name_match["lang"], "language in file name", path, None)
            if name_match
            else None
        )
        yield from _rtp_lx_records(path, all_rows(), file_lang)
    elif isinstance(first_rec.get("prompt"), Mapping):
        yield from _rtp_records(path, all_rows(), default_language or "en")
    else:
        for line, rec in all_rows():
            yield _generic_record(rec, path, line, default_language)


def read_csv_prompts(path: Path, default_language: str | None) -> Iterator[SourcePrompt]:
    """Prompts from a CSV file with a ``text`` or ``prompt`` column (header on line 1)."""
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "prompt" not in columns and "text" not in columns:
            raise DataError(f"no 'prompt' or 'text' column (columns: {columns})", path, 1)
        try:
            for row in reader:
                if None in row:
                    raise DataError("more fields than the header has", path, reader.line_num)
                # Blank cells are absent values, not empty strings, for id/language/toxicity.
                rec = {k: (v if v != "" else None) for k, v in row.items()}
                if rec.get("prompt") is None and rec.get("text") is None:
                    field = "prompt" if "prompt" in columns else "text"
                    raise DataError(f"empty prompt text in column {field!r}", path, reader.line_num)
                yield _generic_record(rec, path, reader.line_num, default_language)
        except csv.Error as exc:
            raise DataError(f"not valid CSV ({exc})", path, reader.line_num) from None


def read_prompt_file(path: Path, default_language: str | None) -> Iterator[SourcePrompt]:
    """Dispatch on the extension: ``.csv`` is CSV, anything else is JSON lines."""
    if path.suffix.lower() == ".csv":
        return read_csv_prompts(path, default_language)
    return read_jsonl_prompts(path, default_language)
