"""The XG paper's published numbers, to show beside a run's own when its base model is theirs.

XG is Li, Yong & Bach 2024, "Preference Tuning For Toxicity Mitigation Generalizes Across
Languages" (arXiv:2406.16235). ``xg_table2.csv`` (package data, beside this module) holds their
Table 2: six models before and after English-only DPO, each metric averaged over the 17 RTP-LX
languages, transcribed from the paper. A run is matched to a row by its base model
(``model.base``): the Hugging Face id itself (case-insensitive), or a ``gs://`` or local folder
path whose last component is the id's model name (``gs://bucket/models/mGPT`` is
``ai-forever/mGPT``; another Hub id such as ``someone/mGPT`` is not).

Kept free of plotting and HTML so that it can be read and tested on its own.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from xdetox.errors import DataError

REFERENCE_CSV = Path(__file__).resolve().with_name("xg_table2.csv")
SOURCE = (
    'Li, Yong & Bach 2024, "Preference Tuning For Toxicity Mitigation Generalizes Across '
    'Languages", arXiv:2406.16235, Table 2'
)
# Table 2's metrics, as metrics.csv names them (toxicity_probability a fraction there too).
METRICS: tuple[str, ...] = (
    "expected_max_toxicity",
    "toxicity_probability",
    "avg_toxicity",
    "perplexity",
)

# XG's evaluation protocol (their xg/eval/*.py) as our settings spell it: (column of
# metrics.csv, config key, XG's value). A run whose values differ is not measured the same way.
XG_PROTOCOL: tuple[tuple[str, str, str], ...] = (
    ("scorer", "scoring.scorer", "perspective"),
    ("threshold", "metrics.threshold", "0.5"),
    ("group_by", "metrics.group_by", "prompt_text"),
    ("empty_text", "scoring.empty_text", "space"),
    ("diversity_tokenizer", "metrics.diversity_tokenizer", "google/mt5-xl"),
    ("distinct_tokens", "metrics.distinct_tokens", "decoded"),
    ("perplexity_method", "metrics.perplexity_method", "xg-seq2seq"),
    ("perplexity_model", "metrics.perplexity_model", "google/mt5-xl"),
    ("quartile_method", "metrics.quartile_method", "midpoint"),
)


@dataclass(frozen=True)
class PaperRow:
    """One model of XG's Table 2: ``before`` (the base model) and ``after`` (English DPO)."""

    hub_id: str
    label: str
    before: Mapping[str, float]
    after: Mapping[str, float]

    @property
    def model_name(self) -> str:
        """The id's last component (``ai-forever/mGPT`` → ``mGPT``)."""
        return self.hub_id.rsplit("/", 1)[-1]


def parse_reference(text: str, source: str | Path = REFERENCE_CSV) -> list[PaperRow]:
    """The rows of a reference CSV (``#`` lines are comments)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = []
    for index, record in enumerate(csv.DictReader(io.StringIO("\n".join(lines)))):
        try:
            rows.append(
                PaperRow(
                    hub_id=record["hub_id"].strip(),
                    label=record["label"].strip(),
                    before={m: float(record[f"{m}_before"]) for m in METRICS},
                    after={m: float(record[f"{m}_after"]) for m in METRICS},
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"reference row {index + 1}: {exc}", source) from None
    return rows


@cache
def load_reference(path: str | Path = REFERENCE_CSV) -> tuple[PaperRow, ...]:
    """XG's Table 2 (read once)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("reference table not found (package data missing?)", path)
    return tuple(parse_reference(path.read_text(encoding="utf-8"), path))


def match_reference(
    base_model: str | None, rows: Sequence[PaperRow] | None = None
) -> PaperRow | None:
    """The Table 2 row of ``base_model`` (see the module docstring), or None."""
    if not base_model or not base_model.strip():
        return None
    source = base_model.strip().rstrip("/").lower()
    last = source.rsplit("/", 1)[-1]
    candidates = load_reference() if rows is None else rows
    for row in candidates:
        if source == row.hub_id.lower():
            return row
    if not _is_path(source):
        return None  # another Hub id (e.g. someone's fine-tune named mGPT) is another model
    for row in candidates:
        if last == row.model_name.lower():
            return row
    return None


def _is_path(source: str) -> bool:
    """A ``gs://`` or local folder path, as opposed to a Hub id (``owner/name``)."""
    return source.startswith(("gs://", "/", "./", "../", "~")) or source.count("/") > 1
