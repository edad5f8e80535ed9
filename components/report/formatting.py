"""How the report writes a number: one place, so every table (HTML and Markdown) agrees.

A missing value is "—", never 0; toxicity probability and per-attribute shares are percents and
their changes percentage points ("pp"); changes carry their sign.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from xdetox.components.metrics.columns import (
    BASE_HIT_RATE,
    MEASURABLE,
    VS_PREFIX,
    ci_columns,
    delta_column,
    is_count_column,
)
from xdetox.components.metrics.floor import measurable_value

MISSING = "—"


def is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_value(column: str, value: object) -> str:
    """Display text of one cell (not escaped)."""
    if is_missing(value):
        return MISSING
    if column == MEASURABLE:
        verdict = measurable_value(value)
        return MISSING if verdict is None else "yes" if verdict else "not measurable"
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    column = column.removeprefix(VS_PREFIX)  # a change against a second model reads the same
    if column in (BASE_HIT_RATE, "power_drop_to_zero", "power"):
        return f"{100 * number:.1f}%"
    if column.startswith("mde_"):  # a size of change, without a sign
        metric = column.removeprefix("mde_")
        if metric == "toxicity_probability":
            return f"{100 * number:.1f} pp"
        return f"{number:.3f}"
    delta = column.startswith("delta_")
    name = column.removeprefix("delta_").removesuffix("_base").removesuffix("_tuned")
    for suffix in ("_ci_low", "_ci_high", "_se"):
        name = name.removesuffix(suffix)
    sign = "+" if delta else ""
    if is_count_column(name) and not delta and math.isfinite(number):
        return str(round(number))
    if name == "toxicity_probability":
        suffix = " pp" if delta else "%"  # percentage points for a change of a percentage
        return f"{100 * number:{sign}.1f}{suffix}"
    if name.startswith("pct_"):
        return f"{number:{sign}.1f}{' pp' if delta else '%'}"
    if name.startswith("perplexity"):
        return f"{number:{sign}.2f}"
    return f"{number:{sign}.3f}"


def interval_text(row: Mapping[str, object], metric: str, prefix: str = "") -> str | None:
    """``[low, high]`` of ``delta_<metric>``'s interval in the delta's display format
    (``prefix`` ``vs_``: of the change against the row's ``compared_with`` model)."""
    low, high = (prefix + c for c in ci_columns(metric))
    if low not in row or high not in row or is_missing(row[low]) or is_missing(row[high]):
        return None
    delta = delta_column(metric)
    return f"[{format_value(delta, row[low])}, {format_value(delta, row[high])}]"
