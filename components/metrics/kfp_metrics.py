"""Turn a metrics table into KFP ``Metrics`` entries, so runs compare side by side in the UI.

Kept apart from the component functions because KFP serialises only a component's own body:
anything shared between components has to be imported from a module like this one.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import pandas as pd

# The numbers people compare across runs; the CSV keeps everything else.
LOGGED_COLUMNS = (
    "expected_max_toxicity",
    "toxicity_probability",
    "avg_toxicity",
    "perplexity",
    "dist_1",
    "dist_2",
    "dist_3",
    "n_missing",
    # Tuned rows only (NaN elsewhere, so not logged): tuned − base with its paired bootstrap CI.
    "delta_expected_max_toxicity",
    "delta_expected_max_toxicity_ci_low",
    "delta_expected_max_toxicity_ci_high",
    "delta_toxicity_probability",
    "delta_toxicity_probability_ci_low",
    "delta_toxicity_probability_ci_high",
    "delta_avg_toxicity",
    "delta_avg_toxicity_ci_low",
    "delta_avg_toxicity_ci_high",
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
