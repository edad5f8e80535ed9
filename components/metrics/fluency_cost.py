"""Fluency cost: how much less likely the base model finds a tuned model's continuations.

Why: preference tuning can lower toxicity by moving the model away from what its prompts ask
for. The base model's negative log-likelihood of a continuation given its prompt (nats per
token, the log of the perplexity the metrics stage already measures under the base) rises with
that drift. Reported beside every toxicity change, it tells a drop bought with fluent,
on-prompt text from one bought with text the base model would never write.

- ``nll_mean`` (every model's row): per prompt unit (``metrics.group_by``) the mean NLL of its
  samples, then the mean over prompts; samples without tokens, or whose perplexity reached
  ``metrics.max_perplexity`` (dropped from the perplexity summary too), are left out.
- ``delta_nll_mean`` (each other model's row) = model − base over the prompts both have, with a
  paired bootstrap over prompts (``delta_nll_mean_se``, ``delta_nll_mean_ci_low/_high``; the
  same resampling as the toxicity changes, ``bootstrap.py``): the fluency cost, positive = the
  base model finds the model's text less likely.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from xdetox.components.metrics.bootstrap import seeded_stream
from xdetox.components.metrics.columns import NLL_METRIC, ci_columns, delta_column, se_column
from xdetox.components.metrics.read_scores import prompt_units


def nll_of_perplexities(perplexities: pd.Series, max_perplexity: float) -> pd.Series:
    """Nats per token of each sample: log(perplexity); NaN where there is none or it was
    dropped (at or above ``max_perplexity``)."""
    values = pd.to_numeric(perplexities, errors="coerce")
    kept = values.where(np.isfinite(values) & (values < max_perplexity))
    return np.log(kept)


def _prompt_means(group: pd.DataFrame, nll: pd.Series, group_by: str) -> pd.Series:
    return nll.loc[group.index].groupby(prompt_units(group, group_by)).mean().dropna()


def nll_table(table: pd.DataFrame, nll: pd.Series, group_by: str = "prompt_id") -> pd.DataFrame:
    """``nll_mean`` per (model, language) of a ``read_scores`` table and its samples' NLL."""
    rows = []
    for (model, language), group in table.groupby(["model", "language"], sort=True):
        means = _prompt_means(group, nll, group_by)
        value = float(means.mean()) if len(means) else math.nan
        rows.append({"model": model, "language": language, NLL_METRIC: value})
    return pd.DataFrame(rows)


def fluency_cost_table(
    table: pd.DataFrame,
    nll: pd.Series,
    baseline: str,
    *,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    group_by: str = "prompt_id",
) -> pd.DataFrame:
    """Per (model, language) other than ``baseline``: the fluency cost and its interval."""
    groups = {key: g for key, g in table.groupby(["model", "language"], sort=True)}
    delta, se = delta_column(NLL_METRIC), se_column(NLL_METRIC)
    low, high = ci_columns(NLL_METRIC)
    rows = []
    for (model, language), group in groups.items():
        if model == baseline or (baseline, language) not in groups:
            continue
        base = _prompt_means(groups[(baseline, language)], nll, group_by)
        mine = _prompt_means(group, nll, group_by)
        paired = base.index.intersection(mine.index).sort_values()
        row: dict[str, Any] = {"model": model, "language": language}
        if len(paired) == 0:
            row.update({delta: math.nan, se: math.nan, low: math.nan, high: math.nan})
            rows.append(row)
            continue
        differences = (mine.loc[paired] - base.loc[paired]).to_numpy(float)
        rng = seeded_stream(seed, str(model), "nll", str(language))
        draws = rng.integers(0, len(differences), size=(samples, len(differences)))
        replicates = differences[draws].mean(axis=1)
        alpha = 1.0 - confidence
        row[delta] = float(differences.mean())
        row[se] = float(replicates.std(ddof=1)) if samples > 1 else math.nan
        row[low] = float(np.quantile(replicates, alpha / 2))
        row[high] = float(np.quantile(replicates, 1 - alpha / 2))
        rows.append(row)
    return pd.DataFrame(rows)
