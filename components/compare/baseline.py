"""Compare a run's per-language metrics with a baseline and flag regressions.

A schedule re-evaluates a model every night; what a team wants from it is one answer per
language: did toxicity rise by more than we accept? The baseline is a ``metrics.csv`` (local or
``gs://``) or a folder holding one (a previous run's output), so yesterday's run can be today's
baseline without copying files around.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xdetox.config import EvaluationConfig
from xdetox.errors import DataError
from xdetox.storage import local_copy

ALL = "ALL"  # the mean-over-languages row written by the report stage


@dataclass
class Comparison:
    table: pd.DataFrame  # one row per language: baseline, current, delta, status
    regressed: list[str]  # languages whose metric rose by more than the margin

    @property
    def message(self) -> str:
        if not self.regressed:
            return "no language regressed"
        worst = self.table[self.table.status == "regressed"].sort_values("delta").iloc[-1]
        return (
            f"toxicity regressed in {len(self.regressed)} language(s): "
            f"{', '.join(self.regressed)} (largest rise {worst.delta:+.4f} in {worst.language})"
        )


def read_metrics_table(uri: str | Path) -> pd.DataFrame:
    """Read ``metrics.csv`` from a file, a folder holding one, or the same on ``gs://``."""
    with local_copy(str(uri)) as path:
        if path.is_dir():
            candidates = sorted(path.rglob("metrics.csv")) or sorted(path.rglob("*.csv"))
            if not candidates:
                raise DataError("no metrics.csv in this folder", uri)
            path = candidates[0]
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"not a readable CSV ({exc})", uri) from None
    missing = {"model", "language"} - set(df.columns)
    if missing:
        raise DataError(f"missing column(s) {', '.join(sorted(missing))}", uri)
    return df


def _rows_for(df: pd.DataFrame, label: str | None, what: str, source: str) -> pd.DataFrame:
    models = sorted(df["model"].astype(str).unique())
    if label is None:
        if len(models) != 1:
            raise DataError(
                f"{what} holds several models ({', '.join(models)}); "
                "set evaluation.baseline_label to choose one",
                source,
            )
        label = models[0]
    rows = df[df["model"].astype(str) == label]
    if rows.empty:
        raise DataError(f"no rows for model {label!r} (found: {', '.join(models)})", source)
    return rows.set_index("language")


def compare_with_baseline(
    current: pd.DataFrame,
    baseline: pd.DataFrame,
    config: EvaluationConfig,
    *,
    baseline_source: str = "baseline",
) -> Comparison:
    """Per language: ``delta = current - baseline`` of ``config.metric``; flag ``delta > margin``.

    Languages only one side has are reported (``no baseline`` / ``missing in run``) and never
    flagged; a missing value (NaN) is never read as 0.
    """
    metric = config.metric
    for df, source in ((current, "this run's metrics"), (baseline, baseline_source)):
        if metric not in df.columns:
            raise DataError(f"no column {metric!r} to compare", source)
    cur = _rows_for(current, config.label, "this run's metrics", "this run's metrics")
    base = _rows_for(baseline, config.baseline_label, "the baseline", baseline_source)
    languages = [x for x in cur.index if x != ALL] + [
        x for x in base.index if x not in cur.index and x != ALL
    ]
    rows = []
    for language in [*languages, ALL]:
        b = float(base[metric].get(language, math.nan)) if language in base.index else math.nan
        c = float(cur[metric].get(language, math.nan)) if language in cur.index else math.nan
        delta = c - b
        if language not in base.index or math.isnan(b):
            status = "no baseline"
        elif language not in cur.index or math.isnan(c):
            status = "missing in run"
        elif language != ALL and delta > config.margin:
            status = "regressed"
        else:
            status = "ok"
        rows.append(
            {
                "language": language,
                "metric": metric,
                "baseline": b,
                "current": c,
                "delta": delta,
                "margin": config.margin,
                "status": status,
            }
        )
    table = pd.DataFrame(rows)
    regressed = table.loc[table.status == "regressed", "language"].tolist()
    return Comparison(table=table, regressed=regressed)
