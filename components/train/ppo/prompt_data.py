"""Prompts for online RL: read from JSON lines (``prompt`` field), cut to a sampled token length.

The TRL detoxification example cut each RealToxicityPrompts prompt to its first k tokens, k drawn
once per prompt (10–15 in the write-up), so that the policy sees short openings of varied length.
The draw uses its own seeded ``random.Random`` so the queries do not depend on, or disturb, the
global random state, and are the same in a run and in its resumption.

Other fields of a prompt line (``language``, ``prompt_id``, ...) travel with the query: TRL passes
dataset columns to reward functions as keyword lists, and the scorer reward reads ``language``.

Accepted lines: ``{"prompt": "text", ...}`` (prepared prompts, ``prompt_toxicity`` optional) and
raw RealToxicityPrompts lines ``{"prompt": {"text": ..., "toxicity": ...}, ...}``. The TRL recipe
kept prompts with ``prompt.toxicity > 0.3`` (``rl.prompt_toxicity_above``); a prompt without a
score cannot pass that filter and is dropped (and counted), never taken as toxicity 0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdetox.errors import DataError
from xdetox.files import iter_jsonl, require_fields

PROMPT_FIELD = "prompt"
TOXICITY_FIELD = "prompt_toxicity"
SCALE_FIELD = "prompt_toxicity_scale"
# The 0-1 Perspective scale of RealToxicityPrompts, the only one the threshold is defined on.
PERSPECTIVE_SCALE = "perspective 0-1"


@dataclass
class Query:
    """One prompt as the policy sees it."""

    text: str  # the kept opening: an exact prefix of the prompt's text
    ids: list[int]  # its tokens (special tokens the tokenizer adds included)
    columns: dict[str, Any] = field(default_factory=dict)  # the line's other fields


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def normalise_record(record: dict, path: Path, line: int) -> dict:
    """A prompt line as ``{"prompt": text, ...}``; a raw RTP ``prompt`` object is flattened
    (its ``toxicity`` becomes ``prompt_toxicity`` on the Perspective scale)."""
    require_fields(record, (PROMPT_FIELD,), path, line)
    value = record[PROMPT_FIELD]
    if isinstance(value, dict):  # RealToxicityPrompts: {"text": ..., "toxicity": ..., ...}
        if not isinstance(value.get("text"), str):
            raise DataError(f"field {PROMPT_FIELD!r} has no 'text' string", path, line)
        record = {k: v for k, v in record.items() if k not in (PROMPT_FIELD, "continuation")}
        record[PROMPT_FIELD] = value["text"]
        score = _score(value.get("toxicity"))
        if score is not None:
            record[TOXICITY_FIELD] = score
            record[SCALE_FIELD] = PERSPECTIVE_SCALE
    elif not isinstance(value, str):
        raise DataError(f"field {PROMPT_FIELD!r} must be a string", path, line)
    if not record[PROMPT_FIELD].strip():
        raise DataError(f"field {PROMPT_FIELD!r} is empty", path, line)
    return record


def prompt_toxicity(record: dict, path: Path, line: int) -> float | None:
    """The prompt's toxicity on the Perspective 0-1 scale (None when it has none)."""
    scale = record.get(SCALE_FIELD)
    if scale is not None and scale != PERSPECTIVE_SCALE:
        raise DataError(
            f"{TOXICITY_FIELD} is on the {scale!r} scale; rl.prompt_toxicity_above is a "
            f"{PERSPECTIVE_SCALE} threshold (use RealToxicityPrompts, or set it to null)",
            path,
            line,
        )
    return _score(record.get(TOXICITY_FIELD, record.get("toxicity")))


def read_prompt_records(
    path: str | Path, *, toxicity_above: float | None = None
) -> list[tuple[int, dict]]:
    """``(line, record)`` of each prompt line (see the module docstring), ``prompt`` a non-empty
    string; with ``toxicity_above``, only prompts scored above it."""
    path = Path(path)
    records = []
    n_read = n_unscored = 0
    for line, raw in iter_jsonl(path):
        record = normalise_record(raw, path, line)
        n_read += 1
        if toxicity_above is not None:
            score = prompt_toxicity(record, path, line)
            if score is None:
                n_unscored += 1
                continue
            if score <= toxicity_above:
                continue
        records.append((line, record))
    if not records:
        if n_read and toxicity_above is not None:
            raise DataError(
                f"no prompt has a toxicity above rl.prompt_toxicity_above={toxicity_above} "
                f"({n_read} read, {n_unscored} without a score)",
                path,
            )
        raise DataError("no prompts", path)
    return records


def _cut(tokenizer, text: str, n_tokens: int) -> tuple[str, list[int]]:
    """The first ``n_tokens`` tokens of ``text`` and the exact text prefix they cover."""
    if tokenizer.is_fast:
        enc = tokenizer(text, return_offsets_mapping=True)
        ids = enc["input_ids"][:n_tokens]
        # Special tokens have (0, 0) offsets; the kept text ends where the last kept token ends.
        end = max((stop for _, stop in enc["offset_mapping"][:n_tokens]), default=0)
        return text[:end], list(ids)
    ids = tokenizer(text)["input_ids"][:n_tokens]
    return tokenizer.decode(ids, skip_special_tokens=True), list(ids)


def build_queries(
    path: str | Path,
    tokenizer,
    min_tokens: int,
    max_tokens: int,
    seed: int,
    *,
    toxicity_above: float | None = None,
) -> list[Query]:
    """Every prompt of ``path`` (above ``toxicity_above`` when given) cut to its first k tokens,
    k uniform in [min_tokens, max_tokens]."""
    path = Path(path)
    rng = random.Random(f"xdetox-query-length-{seed}")
    queries = []
    for line, record in read_prompt_records(path, toxicity_above=toxicity_above):
        n_tokens = rng.randint(min_tokens, max_tokens)
        text, ids = _cut(tokenizer, record[PROMPT_FIELD], n_tokens)
        if not ids or not text.strip():
            raise DataError(f"field {PROMPT_FIELD!r} has no tokens", path, line)
        columns = {k: v for k, v in record.items() if k != PROMPT_FIELD}
        queries.append(Query(text=text, ids=ids, columns=columns))
    return queries
