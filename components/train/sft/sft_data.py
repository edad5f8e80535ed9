"""Instruction data for the SFT stage, in the three formats TRL's ``SFTTrainer`` takes, plus the
preference pairs (their chosen side).

Each JSON line is one of (the first line fixes the format of the file; every line must match):

* ``{"prompt": str, "completion": str}``: prompt-completion; the loss is on the completion only
  (``training.sft.completion_only_loss``);
* ``{"text": str}``: plain language modelling over the whole text;
* ``{"messages": [{"role": ..., "content": ...}, ...]}``: conversations, rendered with the
  tokenizer's chat template (a tokenizer without one is an error naming the model folder);
* ``{"prompt": str, "chosen": str, "rejected": str}``: preference pairs; SFT learns
  ``prompt → chosen``, the non-toxic continuation (the default when ``training.sft.data`` is
  unset: the pairs DPO trains on afterwards).

A source is a JSON-lines file, or a folder with ``train.jsonl`` and optionally ``eval.jsonl`` (a
prepared pairs folder is such a folder). Other fields of a line are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset

from xdetox.errors import DataError
from xdetox.files import iter_jsonl

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"

PROMPT_COMPLETION = "prompt_completion"
TEXT = "text"
MESSAGES = "messages"
PAIRS = "pairs"

_FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    PROMPT_COMPLETION: ("prompt", "completion"),
    PAIRS: ("prompt", "chosen"),
    MESSAGES: ("messages",),
    TEXT: ("text",),
}


def record_format(record: dict[str, Any]) -> str | None:
    """Which format a line is in (checked in the order of ``_FORMAT_FIELDS``), or None."""
    for name, fields in _FORMAT_FIELDS.items():
        if all(f in record for f in fields):
            return name
    return None


def _check_messages(value: Any, path: Path, line: int) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DataError("field 'messages' must be a non-empty list", path, line)
    for i, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise DataError(
                f"messages[{i}] must be an object with string 'role' and 'content'", path, line
            )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _row(record: dict[str, Any], fmt: str, path: Path, line: int) -> dict[str, Any]:
    if fmt == MESSAGES:
        return {"messages": _check_messages(record["messages"], path, line)}
    for name in _FORMAT_FIELDS[fmt]:
        if not isinstance(record[name], str):
            raise DataError(f"field {name!r} must be a string", path, line)
    if fmt == TEXT:
        if not record["text"].strip():
            raise DataError("field 'text' is empty", path, line)
        return {"text": record["text"]}
    field = "chosen" if fmt == PAIRS else "completion"
    completion = record[field]
    if not completion.strip():
        raise DataError(f"field {field!r} is empty", path, line)
    return {"prompt": record["prompt"], "completion": completion}


def read_sft_file(path: str | Path) -> tuple[list[dict[str, Any]], str]:
    """Rows of one file as TRL wants them, and its format (pairs come back as prompt-completion
    rows but keep the format name ``pairs``)."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    fmt: str | None = None
    for line, record in iter_jsonl(path):
        found = record_format(record)
        if found is None:
            raise DataError(
                "expected 'prompt'+'completion', 'text', 'messages' or 'prompt'+'chosen' fields",
                path,
                line,
            )
        if fmt is None:
            fmt = found
        elif found != fmt:
            raise DataError(
                f"line is in the {found!r} format, earlier lines in {fmt!r}", path, line
            )
        rows.append(_row(record, fmt, path, line))
    if not rows or fmt is None:
        raise DataError("no SFT examples", path)
    return rows, fmt


def load_sft_splits(source: str | Path) -> tuple[list[dict], list[dict], str]:
    """``(train rows, eval rows, format)`` of a file or a ``train.jsonl``/``eval.jsonl`` folder."""
    source = Path(source)
    if source.is_dir():
        train, fmt = read_sft_file(source / TRAIN_FILE)
        evals: list[dict] = []
        if (source / EVAL_FILE).is_file():
            evals, eval_fmt = read_sft_file(source / EVAL_FILE)
            if eval_fmt != fmt:
                raise DataError(
                    f"eval file is in the {eval_fmt!r} format, train in {fmt!r}", source
                )
        return train, evals, fmt
    train, fmt = read_sft_file(source)
    return train, [], fmt


def to_dataset(rows: list[dict[str, Any]]) -> Dataset:
    return Dataset.from_list(rows)
