"""Turn a metrics table into KFP ``Metrics`` entries, so runs compare side by side in the UI.

Kept apart from the component functions because KFP serialises only a component's own body:
anything shared between components has to be imported from a module like this one.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import pandas as pd

from xdetox.components.metrics.columns import (
    BASE_HIT_RATE,
    BOOTSTRAP_METRICS,
    DIVERSITY_METRICS,
    FLUENCY_METRICS,
    TOXICITY_METRICS,
    ci_columns,
    delta_column,
    mde_column,
)

# The numbers people compare across runs (the CSV keeps everything else), then, on tuned rows
# only (NaN elsewhere, so not logged), tuned − base with its paired bootstrap CI, the base's hit
# rate and the smallest change the run could detect (the scorer floor, ``floor.py``).
LOGGED_COLUMNS: tuple[str, ...] = (
    *TOXICITY_METRICS,
    *FLUENCY_METRICS,
    *DIVERSITY_METRICS,
    "n_missing",
    *(name for m in BOOTSTRAP_METRICS for name in (delta_column(m), *ci_columns(m))),
    BASE_HIT_RATE,
    *(mde_column(m) for m in BOOTSTRAP_METRICS),
)


class _MetricsArtifact(Protocol):
    def log_metric(self, metric: str, value: float) -> None: ...


def log_table(df: pd.DataFrame, artifact: _MetricsArtifact, columns=LOGGED_COLUMNS) -> int:
    """Log ``<model>.<language>.<column>`` for every finite value; return how many were logged.

    Missing values (NaN: no perplexity model, all scores missing) are left out rather than
    logged as 0, so the UI shows a gap instead of a fake number.
    """
    n = 0
    for row in df.to_dict(orient="records"):
        for column in columns:
            value: Any = row.get(column)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and math.isfinite(value):
                artifact.log_metric(f"{row['model']}.{row['language']}.{column}", float(value))
                n += 1
    return n
