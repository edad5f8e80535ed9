"""Plots for the report: grouped bars per language, one bar per model, as base64 PNG.

The drawing is ``xdetox.plots`` (shared with the interpretability stages); this module picks
the values out of a metrics table.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence

import pandas as pd

from xdetox.components.report.aggregate import ALL_LANGUAGES
from xdetox.plots import grouped_bars_figure, png_bytes
from xdetox.records import BASE_LABEL


def _ordered(values: Sequence[str], first: str) -> list[str]:
    unique = list(dict.fromkeys(values))
    return sorted(unique, key=lambda v: (v != first, v))


def _languages(df: pd.DataFrame) -> list[str]:
    languages = sorted({str(v) for v in df["language"]} - {ALL_LANGUAGES})
    return [*languages, ALL_LANGUAGES] if (df["language"] == ALL_LANGUAGES).any() else languages


def has_values(df: pd.DataFrame, metric: str) -> bool:
    """Whether any row holds a value for ``metric`` (a plot of nothing is left out)."""
    return metric in df and pd.to_numeric(df[metric], errors="coerce").notna().any()


def _values(df: pd.DataFrame, model: str, column: str, languages: Sequence[str]) -> list[float]:
    """``column`` of ``model`` per language (NaN where absent or not a number)."""
    rows = df[df["model"] == model].set_index("language")
    if column not in rows:
        return [math.nan] * len(languages)
    values = pd.to_numeric(rows[column], errors="coerce")
    return [float(values.get(language, math.nan)) for language in languages]


def grouped_bars_png(
    df: pd.DataFrame,
    metrics: Sequence[tuple[str, str]],
    *,
    title: str,
    scale: dict[str, float] | None = None,
) -> str:
    """Base64 PNG: one panel per ``(column, label)`` in ``metrics``; in each, languages on the
    x axis and one bar per model. A missing value draws no bar and is marked "n/a", never 0.
    ``scale`` multiplies a column's values for display (e.g. 100 for a fraction as percent)."""
    scale = scale or {}
    languages = _languages(df)
    models = _ordered([str(m) for m in df["model"]], BASE_LABEL)
    panels = [
        (
            label,
            {
                model: [v * scale.get(column, 1.0) for v in _values(df, model, column, languages)]
                for model in models
            },
        )
        for column, label in metrics
    ]
    figure = grouped_bars_figure(languages, panels, title=title)
    return base64.b64encode(png_bytes(figure)).decode("ascii")
