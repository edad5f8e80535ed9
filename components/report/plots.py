"""Plots for the report: grouped bars per language, one bar per model, as base64 PNG.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``): no display, no global
state shared between calls, safe in a container or a test run.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xdetox.components.report.aggregate import ALL_LANGUAGES
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
    width = 0.8 / max(len(models), 1)
    fig = Figure(figsize=(max(6.0, 0.35 * len(languages) * len(models) + 2), 3.2 * len(metrics)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, (column, label) in zip(axes, metrics, strict=True):
        factor = scale.get(column, 1.0)
        for m_index, model in enumerate(models):
            rows = df[df["model"] == model].set_index("language")
            heights = []
            for language in languages:
                value = rows[column].get(language, math.nan) if column in rows else math.nan
                value = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
                heights.append(float(value) * factor if pd.notna(value) else math.nan)
            offset = (m_index - (len(models) - 1) / 2) * width
            positions = [i + offset for i in range(len(languages))]
            drawn = [(x, h) for x, h in zip(positions, heights, strict=True) if not math.isnan(h)]
            ax.bar([x for x, _ in drawn], [h for _, h in drawn], width, label=model,
                   color=f"C{m_index}")  # fmt: skip
            for x, h in zip(positions, heights, strict=True):
                if math.isnan(h):
                    # x in data units, y in axes units: just above the axis whatever the scale.
                    ax.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize=8,
                            color=f"C{m_index}", transform=ax.get_xaxis_transform())  # fmt: skip
        ax.set_xticks(range(len(languages)))
        ax.set_xticklabels(languages)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
