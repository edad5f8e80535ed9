"""How much two toxicity scorers agree on the same generations, language by language.

Why: the Perspective API stops after 2026; a team moving to a classifier needs to know, per
language, whether the new scorer ranks texts the same way (Spearman), is linearly related
(Pearson), and puts the same texts on the same side of the 0.5 line (agreement, Cohen's κ),
because toxicity probability and the card's table depend on that line.

Input: score files (``xdetox.records.SCORE_FIELDS``) of two or more scorers, grouped by their
``scorer`` field. Samples are joined on (model, prompt_id, sample_index, language); the joined
samples must hold the same text (otherwise the files are not scores of the same generations).
A sample missing a score on either side is excluded from every statistic and counted
(``n_missing``); samples only one scorer has are counted too (``n_only_a`` / ``n_only_b``).
An undefined statistic (fewer than two pairs, a constant side) is NaN, never 0.

Per pair of scorers, one row per language plus ``ALL`` (every language pooled).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xdetox.components.metrics.read_scores import read_scores, score_column
from xdetox.errors import DataError
from xdetox.records import TOXICITY
from xdetox.stats import pearson, spearman

JOIN_KEY: tuple[str, ...] = ("model", "prompt_id", "sample_index", "language")
ALL_LANGUAGES = "ALL"
COLUMNS: tuple[str, ...] = (
    "scorer_a",
    "scorer_b",
    "attribute",
    "language",
    "n_paired",
    "n_missing",
    "n_only_a",
    "n_only_b",
    "pearson",
    "spearman",
    "agreement",
    "cohen_kappa",
    "positive_rate_a",
    "positive_rate_b",
    "mean_a",
    "mean_b",
    "threshold",
)


def agreement_stats(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Correlations and agreement at ``threshold`` of two paired score arrays (no NaN)."""
    n = len(a)
    row: dict[str, float] = {
        "pearson": pearson(a, b),
        "spearman": spearman(a, b),
        "agreement": math.nan,
        "cohen_kappa": math.nan,
        "positive_rate_a": math.nan,
        "positive_rate_b": math.nan,
        "mean_a": float(a.mean()) if n else math.nan,
        "mean_b": float(b.mean()) if n else math.nan,
    }
    if n == 0:
        return row
    pa, pb = a >= threshold, b >= threshold
    observed = float((pa == pb).mean())
    rate_a, rate_b = float(pa.mean()), float(pb.mean())
    expected = rate_a * rate_b + (1 - rate_a) * (1 - rate_b)
    row.update(
        agreement=observed,
        positive_rate_a=rate_a,
        positive_rate_b=rate_b,
        # κ is undefined when chance agreement is certain (both sides constant and equal).
        cohen_kappa=(observed - expected) / (1 - expected) if expected < 1 else math.nan,
    )
    return row


def tables_by_scorer(score_files: Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    """Samples of each scorer (``read_scores`` per file, grouped by the ``scorer`` field).

    A sample scored twice by the same scorer (in two files) is an error naming both files.
    """
    if not score_files:
        raise DataError("no score files given")
    parts: dict[str, list[pd.DataFrame]] = {}
    for path in score_files:
        table = read_scores([path])
        table["_file"] = str(path)
        for scorer, group in table.groupby("scorer", sort=False):
            parts.setdefault(str(scorer), []).append(group)
    out = {}
    for scorer, frames in parts.items():
        table = pd.concat(frames, ignore_index=True)
        repeated = table[table.duplicated(list(JOIN_KEY), keep=False)]
        if not repeated.empty:
            first = repeated.iloc[0]
            files = sorted(set(repeated[_same_key(repeated, first)]["_file"]))
            raise DataError(
                f"scorer {scorer!r} scored sample (model={first['model']!r}, "
                f"language={first['language']!r}, prompt_id={first['prompt_id']!r}, "
                f"sample_index={first['sample_index']}) twice: {' and '.join(files)}",
                files[-1],
            )
        out[scorer] = table
    return out


def _same_key(table: pd.DataFrame, row: pd.Series) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for column in JOIN_KEY:
        mask &= table[column] == row[column]
    return mask


def compare_scorers(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    scorer_a: str,
    scorer_b: str,
    attribute: str = TOXICITY,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Rows per language and ``ALL`` for two scorers' tables (see the module docstring)."""
    column = score_column(attribute)
    keep = [*JOIN_KEY, "text", "_file"]
    left = a[keep].assign(score_a=a.get(column, math.nan))
    right = b[keep].assign(score_b=b.get(column, math.nan))
    joined = left.merge(right, on=list(JOIN_KEY), how="outer", suffixes=("_a", "_b"),
                        indicator=True)  # fmt: skip
    both = joined[joined["_merge"] == "both"]
    different = both[both["text_a"] != both["text_b"]]
    if not different.empty:
        first = different.iloc[0]
        raise DataError(
            f"scorers {scorer_a!r} and {scorer_b!r} scored different texts for sample "
            f"(model={first['model']!r}, language={first['language']!r}, "
            f"prompt_id={first['prompt_id']!r}, sample_index={first['sample_index']}): "
            "not the same generations",
            first["_file_b"],
        )
    rows = []
    languages = sorted(joined["language"].unique())
    for language in [*languages, ALL_LANGUAGES]:
        part = joined if language == ALL_LANGUAGES else joined[joined["language"] == language]
        matched = part[part["_merge"] == "both"]
        scored = matched[matched["score_a"].notna() & matched["score_b"].notna()]
        row: dict[str, Any] = {
            "scorer_a": scorer_a,
            "scorer_b": scorer_b,
            "attribute": attribute,
            "language": language,
            "n_paired": len(scored),
            "n_missing": len(matched) - len(scored),
            "n_only_a": int((part["_merge"] == "left_only").sum()),
            "n_only_b": int((part["_merge"] == "right_only").sum()),
            "threshold": threshold,
        }
        row.update(
            agreement_stats(
                scored["score_a"].to_numpy(float), scored["score_b"].to_numpy(float), threshold
            )
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def agreement_table(
    score_files: Sequence[str | Path], *, attribute: str = TOXICITY, threshold: float = 0.5
) -> pd.DataFrame:
    """Agreement of every pair of scorers found in ``score_files`` (in order of appearance)."""
    tables = tables_by_scorer(score_files)
    if len(tables) < 2:
        found = ", ".join(tables) or "none"
        raise DataError(
            f"agreement needs scores from two scorers; the files hold one ({found}): "
            + ", ".join(str(p) for p in score_files)
        )
    frames = [
        compare_scorers(
            tables[x], tables[y], scorer_a=x, scorer_b=y, attribute=attribute, threshold=threshold
        )
        for x, y in itertools.combinations(tables, 2)
    ]
    return pd.concat(frames, ignore_index=True)
