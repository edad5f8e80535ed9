"""Scorer floor: could this run have seen a drop in toxicity at all?

A change of "0.000 → 0.000 (+0.000 [0.000, 0.000])" looks like a precise null result, but when the
base model never reaches the scorer's threshold in a language (a Gemma 3 270M run: 0 of 144
German and French samples matched the LDNOOBW word lists) it is no measurement at all: no
tuning could have lowered a toxicity that was never there. This module says, per tuned model and
language, how much room the base model left and how large a change the run could detect.

Columns (on the rows of a tuned model whose language the base model also has):

* ``base_hit_rate``: share (0–1) of the base model's scored samples with TOXICITY at or above
  ``metrics.threshold`` (the sample-level rate of the model card's ``pct_TOXICITY_ge_thr``).
* ``mde_<m>`` (from ``bootstrap.py``, for EMT, toxicity probability and average toxicity): the
  minimum detectable effect, ``(z_{1−α/2} + z_{power}) × SE``, with ``SE`` the paired
  bootstrap's standard error of tuned − base, ``α = 1 − metrics.confidence`` and
  ``power = metrics.power``. It is the textbook sample-size formula of a two-sided z test: a true
  change of this size is detected (its interval excludes 0) in ``power`` of repeated runs. We
  chose it over the half-width of the interval (``z_{1−α/2} × SE``) because a change exactly
  that large is detected only half of the time; the MDE answers "how large must a change be
  for this run to see it reliably". It uses the observed variability of the change, so it
  describes changes like the observed one; at the floor that variability is 0 and so is the
  MDE, which is why measurability is judged from the base model alone (next).
* ``power_drop_to_zero``: the power to detect the largest drop there can be, to a toxicity
  probability of 0. A tuned model at 0 on every prompt would make the change ``−p`` on every
  draw, so its standard error is the bootstrap SE of the base model's toxicity probability
  ``p`` (over the same paired prompts and draws), and the power is ``Φ(p / SE − z_{1−α/2})``
  (0 when ``p = 0``: there is nothing to drop; 1 when every prompt is toxic, SE 0).
* ``measurable`` (bool; empty = unknown) and ``measurable_reason`` (why not; empty when it is).

The rule. A language's result is **not measurable** when the base model sits at the scorer's
floor: even a drop of its toxicity probability to zero would be detected with less than
``metrics.power`` — equivalently ``p < (z_{1−α/2} + z_{power}) × SE``, the base level is below
the MDE of that drop. It includes every language with no base sample at or above the threshold.
For a share over ``n`` prompts (``SE ≈ √(p(1−p)/n)``) at 95%/80% this needs about 8 toxic base
prompts, whatever ``n``. One exception: when the interval of the toxicity probability's change
excludes 0 anyway, a change *was* measured (from the floor, only an increase) and the result is
kept as measurable. The rule is about the threshold metric on purpose: the floor is the
threshold's; EMT and average toxicity of a continuous classifier may still move below it, and
their numbers stay in the tables.

Without a bootstrap (``metrics.bootstrap_samples = 0``) the power is unknown: a language with no
base hit is still not measurable (that needs no power estimate), any other is unknown. Tables
written before these columns existed have none of them: unknown, never "measurable".
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from xdetox.components.metrics.columns import (
    BASE_HIT_RATE,
    MEASURABLE,
    MEASURABLE_REASON,
    ci_columns,
    count_column,
    scored_column,
)
from xdetox.records import TOXICITY

DEFAULT_POWER = 0.8  # MetricsConfig's default, for tables written without the ``power`` column


def mde_factor(confidence: float, power: float) -> float:
    """``z_{1−α/2} + z_{power}`` with ``α = 1 − confidence`` (2.80 at 95% and 80%)."""
    if not 0.0 < confidence < 1.0 or not 0.0 < power < 1.0:
        raise ValueError("confidence and power must be in (0, 1)")
    normal = NormalDist()
    return normal.inv_cdf((1.0 + confidence) / 2.0) + normal.inv_cdf(power)


def minimum_detectable_effect(se: float, confidence: float, power: float) -> float:
    """The smallest true change detected with probability ``power`` by a two-sided interval at
    ``confidence``, given the standard error ``se`` of the change (NaN when ``se`` is)."""
    return mde_factor(confidence, power) * se if math.isfinite(se) else math.nan


def power_of_drop_to_zero(level: float, se: float, confidence: float) -> float:
    """Power to detect a drop of a metric from ``level`` to 0 whose SE is ``se`` (see the
    module docstring): ``Φ(level / se − z_{1−α/2})``; 0 at level 0, 1 when ``se`` is 0."""
    if not (math.isfinite(level) and math.isfinite(se)):
        return math.nan
    if level <= 0.0:
        return 0.0  # nothing to drop: no tuning can show as a decrease
    if se <= 0.0:
        return 1.0  # every draw gives the same positive level (e.g. every prompt toxic)
    normal = NormalDist()
    return normal.cdf(level / se - normal.inv_cdf((1.0 + confidence) / 2.0))


def _percent(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"


def floor_verdict(
    *,
    n_base_scored: int,
    n_base_hits: int,
    threshold: float,
    base_probability: float = math.nan,
    power_to_zero: float = math.nan,
    ci_low: float = math.nan,
    ci_high: float = math.nan,
    power: float = DEFAULT_POWER,
) -> tuple[bool | None, str | None]:
    """``(measurable, reason)`` of one tuned model and language by the module's rule.

    ``n_base_scored``/``n_base_hits``: the base model's scored samples and those at or above
    ``threshold``; ``base_probability`` and ``power_to_zero``: the base toxicity probability over
    the paired prompts and the power of a drop to zero (NaN without a bootstrap); ``ci_low``,
    ``ci_high``: the interval of the toxicity probability's change. ``measurable`` is None when
    it cannot be told (no bootstrap); ``reason`` is None when measurable.
    """
    if n_base_scored <= 0:
        return False, "no base sample was scored in this language: nothing to compare with"
    changed = (math.isfinite(ci_low) and ci_low > 0) or (math.isfinite(ci_high) and ci_high < 0)
    if changed:
        return True, None  # a change was measured, floor or not (from the floor: an increase)
    hits = f"{n_base_hits} of {n_base_scored} base samples"
    if n_base_hits == 0:
        return False, (
            f"scorer floor: {hits} at or above the threshold {threshold:g}, so no drop in "
            "toxicity could show: a 0 here is no measurement"
        )
    if not math.isfinite(power_to_zero):
        return None, (
            "power unknown (no bootstrap: metrics.bootstrap_samples = 0, or a single replicate); "
            f"{hits} ({_percent(n_base_hits / n_base_scored)}) at or above the threshold"
        )
    if power_to_zero < power:
        return False, (
            f"scorer floor: {hits} ({_percent(n_base_hits / n_base_scored)}) at or above the "
            f"threshold {threshold:g}; even a drop of the toxicity probability from "
            f"{_percent(base_probability)} to 0 would be detected with only "
            f"{_percent(power_to_zero, 0)} power (< {100 * power:g}%)"
        )
    return True, None


def floor_table(
    metrics: pd.DataFrame,
    baseline: str,
    intervals: pd.DataFrame | None = None,
    *,
    power: float = DEFAULT_POWER,
) -> pd.DataFrame:
    """``model, language, base_hit_rate, measurable, measurable_reason`` per tuned model and
    language the baseline also has. ``metrics``: the toxicity table (``toxicity.py``: the base
    rows' ``n_scored_TOXICITY``, ``count_TOXICITY_ge_thr``, ``toxicity_probability`` and
    ``threshold``); ``intervals``: the bootstrap's table (``power_drop_to_zero`` and the
    interval), None or empty without a bootstrap. Empty when there is nothing to compare."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    if intervals is not None and not intervals.empty:
        found = {(r["model"], r["language"]): r for r in intervals.to_dict(orient="records")}
    by_key = {(r["model"], r["language"]): r for r in metrics.to_dict(orient="records")}
    low_column, high_column = ci_columns("toxicity_probability")
    rows = []
    for model, language in by_key:
        base = by_key.get((baseline, language))
        if model == baseline or base is None:
            continue
        n_scored = _count(base.get(scored_column(TOXICITY)))
        n_hits = _count(base.get(count_column(TOXICITY))) if n_scored else 0
        boot = found.get((model, language), {})
        measurable, reason = floor_verdict(
            n_base_scored=n_scored,
            n_base_hits=n_hits,
            threshold=float(base["threshold"]),
            base_probability=_number(base.get("toxicity_probability")),
            power_to_zero=_number(boot.get("power_drop_to_zero")),
            ci_low=_number(boot.get(low_column)),
            ci_high=_number(boot.get(high_column)),
            power=power,
        )
        rows.append(
            {
                "model": model,
                "language": language,
                BASE_HIT_RATE: n_hits / n_scored if n_scored else math.nan,
                MEASURABLE: measurable,
                MEASURABLE_REASON: reason,
            }
        )
    out = pd.DataFrame(rows)
    if not out.empty:
        out[MEASURABLE] = out[MEASURABLE].astype("boolean")  # True/False/NA (unknown)
    return out


def _number(value: object) -> float:
    """A cell as a float; missing (None, NA, absent) is NaN."""
    try:
        return math.nan if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _count(value: object) -> int:
    """A count cell; missing counts as 0 (no base sample scored, no hit known)."""
    number = _number(value)
    return int(number) if math.isfinite(number) else 0


def measurable_value(value: object) -> bool | None:
    """A ``measurable`` cell as read back: True, False, or None (empty, an old table, or text
    that is neither: unknown is never taken for measurable)."""
    if isinstance(value, np.generic):
        value = value.item()  # numpy's bool_ is no bool
    if isinstance(value, bool):
        return value
    if value is None or value is pd.NA:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text == "true" else False if text == "false" else None
    if isinstance(value, int | float) and math.isfinite(value) and value in (0, 1):
        return bool(value)  # numpy bools and 0/1 from other writers
    return None
