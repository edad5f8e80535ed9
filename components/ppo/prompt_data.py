"""Prompts for online RL: read from JSON lines (``prompt`` field), cut to a sampled token length.

The TRL detoxification example cut each RealToxicityPrompts prompt to its first k tokens, k drawn
once per prompt (10–15 in the write-up), so that the policy sees short openings of varied length.
The draw uses its own seeded ``random.Random`` so the queries do not depend on, or disturb, the
global random state, and are the same in a run and in its resumption.

Other fields of a prompt line (``language``, ``prompt_id``, ...) travel with the query: TRL passes
dataset columns to reward functions as keyword lists, and the scorer reward reads ``language``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdetox.errors import DataError
from xdetox.files import iter_jsonl, require_fields

PROMPT_FIELD = "prompt"


@dataclass
class Query:
    """One prompt as the policy sees it."""

    text: str  # the kept opening: an exact prefix of the prompt's text
    ids: list[int]  # its tokens (special tokens the tokenizer adds included)
    columns: dict[str, Any] = field(default_factory=dict)  # the line's other fields


def read_prompt_records(path: str | Path) -> list[tuple[int, dict]]:
    """``(line, record)`` of each prompt line; ``prompt`` must be a non-empty string."""
    path = Path(path)
    records = []
    for line, record in iter_jsonl(path):
        require_fields(record, (PROMPT_FIELD,), path, line)
        text = record[PROMPT_FIELD]
        if not isinstance(text, str):
            raise DataError(f"field {PROMPT_FIELD!r} must be a string", path, line)
        if not text.strip():
            raise DataError(f"field {PROMPT_FIELD!r} is empty", path, line)
        records.append((line, record))
    if not records:
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
    path: str | Path, tokenizer, min_tokens: int, max_tokens: int, seed: int
) -> list[Query]:
    """Every prompt of ``path`` cut to its first k tokens, k uniform in [min_tokens, max_tokens]."""
    path = Path(path)
    rng = random.Random(f"xdetox-query-length-{seed}")
    queries = []
    for line, record in read_prompt_records(path):
        n_tokens = rng.randint(min_tokens, max_tokens)
        text, ids = _cut(tokenizer, record[PROMPT_FIELD], n_tokens)
        if not ids or not text.strip():
            raise DataError(f"field {PROMPT_FIELD!r} has no tokens", path, line)
        columns = {k: v for k, v in record.items() if k != PROMPT_FIELD}
        queries.append(Query(text=text, ids=ids, columns=columns))
    return queries
