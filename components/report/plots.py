"""Plots for the report, as base64 PNG: grouped bars per language (one bar per model) and the
forest plot of the change per language (tuned − base) with its confidence interval, a hollow
marker where the change is not measurable (the base model at the scorer's floor).

The bars are drawn by ``xdetox.plots`` (shared with the interpretability stages); this module
picks the values out of a metrics table. The forest plot is the report's own.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from xdetox.components.metrics.columns import MEASURABLE, ci_columns, delta_column
from xdetox.components.metrics.floor import measurable_value
from xdetox.components.report.aggregate import ALL_LANGUAGES
from xdetox.plots import grouped_bars_figure, new_figure, png_bytes
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


# ------------------------------------------------------------------------------ forest plot
# The paper's question in one figure: per language, how much tuning changed each toxicity
# metric (tuned − base), with the paired bootstrap's interval. (column, axis label, scale).
FOREST_METRICS: tuple[tuple[str, str, float], ...] = (
    ("expected_max_toxicity", "Δ EMT", 1.0),
    ("toxicity_probability", "Δ tox. probability (pp)", 100.0),
    ("avg_toxicity", "Δ average toxicity", 1.0),
)
# Markers: interval below 0 (less toxic), above 0 (more toxic), or including 0.
_LOWER, _HIGHER, _UNCLEAR = "#1a7f37", "#c62828", "#555555"
_SHAPES = ("o", "s", "^", "v", "P")  # one per tuned model


@dataclass(frozen=True)
class ForestPoint:
    """One tuned model's change in one metric and language, as metrics.csv holds it
    (``delta_<metric>``, ``delta_<metric>_ci_low``/``_high``; NaN where absent), unscaled, and
    whether the change is measurable at all (``measurable``; None: unknown, e.g. an old table)."""

    model: str
    language: str
    metric: str
    delta: float
    low: float
    high: float
    measurable: bool | None = None


def _number(value: object) -> float:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return float(number) if pd.notna(number) else math.nan


def forest_points(df: pd.DataFrame) -> list[ForestPoint]:
    """Every tuned row's change per toxicity metric, languages in the report's order (``ALL``
    last); rows without a change (the base model, a table without a tuned model) give none."""
    points = []
    languages = _languages(df)
    tuned = [m for m in _ordered([str(m) for m in df["model"]], BASE_LABEL) if m != BASE_LABEL]
    for metric, _label, _scale in FOREST_METRICS:
        delta = delta_column(metric)
        low, high = ci_columns(metric)
        if delta not in df:
            continue
        for model in tuned:
            rows = df[df["model"] == model].set_index("language")
            for language in languages:
                if language not in rows.index:
                    continue
                row = rows.loc[language]
                value = _number(row[delta])
                if math.isnan(value):
                    continue
                points.append(
                    ForestPoint(
                        model, language, metric, value,
                        _number(row[low]) if low in rows else math.nan,
                        _number(row[high]) if high in rows else math.nan,
                        measurable_value(row[MEASURABLE]) if MEASURABLE in rows else None,
                    )
                )  # fmt: skip
    return points


def interval_color(low: float, high: float) -> str:
    """Green when the whole interval is below 0 (less toxic), red above 0, grey otherwise."""
    if math.isnan(low) or math.isnan(high):
        return _UNCLEAR
    return _LOWER if high < 0 else _HIGHER if low > 0 else _UNCLEAR


def forest_figure(points: Sequence[ForestPoint], *, title: str) -> Figure:
    """One panel per metric of :data:`FOREST_METRICS` that has points: languages top to
    bottom (``ALL`` last, a larger marker), the change as a marker and its interval as a bar
    (scaled for display: probability in percentage points), a dashed line at no change. The
    colour says where the interval lies (:func:`interval_color`); a hollow marker (and a note in
    the title) where the change is not measurable; several tuned models are offset vertically,
    one marker shape each, named in a legend."""
    metrics = [m for m in FOREST_METRICS if any(p.metric == m[0] for p in points)]
    languages = list(dict.fromkeys(p.language for p in points))
    models = list(dict.fromkeys(p.model for p in points))
    rows = len(languages) * len(models)
    fig = new_figure(3.7 * max(len(metrics), 1), max(2.5, 0.3 * rows + 1.4))
    axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    offset = 0.6 / len(models)
    for ax, (metric, label, scale) in zip(axes, metrics, strict=False):
        for m, model in enumerate(models):
            shape = _SHAPES[m % len(_SHAPES)]
            labelled = False
            for point in (p for p in points if p.metric == metric and p.model == model):
                y = languages.index(point.language) + (m - (len(models) - 1) / 2) * offset
                has_ci = not (math.isnan(point.low) or math.isnan(point.high))
                below, above = (point.delta - point.low) * scale, (point.high - point.delta) * scale
                color = interval_color(point.low, point.high)
                ax.errorbar(
                    [point.delta * scale],
                    [y],
                    xerr=[[below], [above]] if has_ci else None,
                    fmt=shape,
                    color=color,
                    ecolor=color,
                    markersize=8 if point.language == ALL_LANGUAGES else 5,
                    # Hollow: a change nobody could have seen (scorer floor), not a result.
                    markerfacecolor="none" if point.measurable is False else color,
                    capsize=3,
                    label=model if len(models) > 1 and not labelled else None,
                )
                labelled = True
        ax.axvline(0, color="grey", linewidth=0.8, linestyle="--")
        if ALL_LANGUAGES in languages and len(languages) > 1:  # the mean apart from its parts
            ax.axhline(languages.index(ALL_LANGUAGES) - 0.5, color="grey", linewidth=0.5)
        ax.set_yticks(range(len(languages)))
        ax.set_yticklabels(languages)
        ax.set_ylim(len(languages) - 0.5, -0.5)  # first language on top
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        if len(models) > 1:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("language")
    if any(p.measurable is False for p in points):
        title += "\nhollow marker: not measurable (base model at the scorer's floor)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def forest_png(df: pd.DataFrame, *, level: str = "95%") -> str | None:
    """Base64 PNG of the forest plot of ``df``'s changes, or None when it has none."""
    points = forest_points(df)
    if not points:
        return None
    figure = forest_figure(points, title=f"Tuned − base per language, {level} CI")
    return base64.b64encode(png_bytes(figure)).decode("ascii")
