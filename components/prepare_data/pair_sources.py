"""Reading preference pairs from their source files, whatever format they come in.

Two formats are accepted, detected per file from its first record:

* ``toxicity_pairwise`` (Lee et al. 2024, used by the XG paper): ``prompt_text``,
  ``unpert_gen_text`` (greedy continuation, the *chosen* answer) and ``pert_gen_text`` (PPLM
  continuation steered toward toxicity, the *rejected* answer). Token-id fields are ignored.
* generic TRL preference lines: ``prompt``, ``chosen``, ``rejected``.

Whether the toxicity_pairwise continuations repeat their prompt is not documented, and TRL's
``DPOTrainer`` concatenates ``prompt + chosen``: a repeated prompt would be trained on twice. So
every pair is checked on its own and a repeated prompt is cut off (see
:func:`strip_repeated_prompt`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from xdetox.config import SELF_PAIRS
from xdetox.errors import ConfigError, DataError
from xdetox.files import iter_jsonl, require_fields
from xdetox.toy.data_sources import toy_data

# Field names of each accepted format: (prompt, chosen, rejected).
PAIRWISE_FIELDS = ("prompt_text", "unpert_gen_text", "pert_gen_text")
GENERIC_FIELDS = ("prompt", "chosen", "rejected")

# GPT-2 decodes its BOS as this text; generation scripts that decode the whole sequence, context
# included, start their continuations with it before the repeated prompt.
GPT2_BOS_TEXT = "<|endoftext|>"


@dataclass(frozen=True)
class RawPair:
    """One pair as read, before any stripping or filtering."""

    pair_id: str  # "file:line", so a kept pair can be traced back to its source line
    prompt: str
    chosen: str
    rejected: str


def resolve_source(source: str | Path) -> Path:
    """Turn ``source`` into a local path; ``"toy"`` is the package's toy pairs folder."""
    if str(source) == SELF_PAIRS:  # there is nothing to read: the pairs are yet to be sampled
        raise ConfigError(
            "data.preference: 'self' pairs are made by the detox pipeline or by "
            "`xdetox make-pairs --output DIR`; pass that DIR as the preference data"
        )
    toy = toy_data(source, "pairs")
    if toy is not None:
        return toy
    if str(source).startswith("gs://"):
        raise DataError("gs:// sources must be downloaded to a local folder first", source)
    return Path(source)


def source_files(source: Path) -> list[Path]:
    """The JSON-lines files of a source: the file itself, or every ``*.jsonl`` of a folder.

    A folder's files are read in name order. The XG reference (``xg/training/dpo.py``) read them
    in ``pathlib.Path.glob`` order, which is the file system's directory order and so undefined;
    a fixed order makes our runs repeatable, and it is the only order a split of the reference's
    can be compared with (``data.split_method: datasets`` draws positions in this list).
    """
    if source.is_dir():
        files = sorted(p for p in source.glob("*.jsonl") if p.is_file())
        if not files:
            raise DataError("no *.jsonl files in this folder", source)
        return files
    if not source.is_file():
        raise DataError("preference data not found", source)
    return [source]


def _fields_for(record: dict, path: Path, line: int) -> tuple[str, str, str]:
    if "prompt_text" in record:
        return PAIRWISE_FIELDS
    if "prompt" in record:
        return GENERIC_FIELDS
    raise DataError(
        "unknown preference format: expected prompt_text/unpert_gen_text/pert_gen_text "
        "(toxicity_pairwise) or prompt/chosen/rejected",
        path,
        line,
    )


def iter_file_pairs(path: Path, pair_id_prefix: str) -> Iterator[RawPair]:
    """Yield the pairs of one JSON-lines file; a bad line raises :class:`DataError` (file:line)."""
    fields: tuple[str, str, str] | None = None
    for line, record in iter_jsonl(path):
        if fields is None:
            fields = _fields_for(record, path, line)
        require_fields(record, fields, path, line)
        values = [record[name] for name in fields]
        for name, value in zip(fields, values, strict=True):
            if not isinstance(value, str):
                raise DataError(
                    f"field {name!r} must be a string, got {type(value).__name__}", path, line
                )
        prompt, chosen, rejected = values
        yield RawPair(f"{pair_id_prefix}:{line}", prompt, chosen, rejected)


def strip_repeated_prompt(prompt: str, answer: str) -> tuple[str, bool]:
    """Return ``(answer without a leading copy of prompt, whether one was found)``.

    TRL builds each training sequence as ``prompt + answer``, so the answer must hold only the
    continuation. A leading GPT-2 BOS text before the repeated prompt is removed with it. An empty
    prompt never counts as repeated.
    """
    if not prompt:
        return answer, False
    for prefix in (prompt, GPT2_BOS_TEXT + prompt):
        if answer.startswith(prefix):
            return answer[len(prefix) :], True
    return answer, False
