"""PNG plots of the interpretability stages, drawn on matplotlib's Agg canvas.

No ``pyplot``: no display and no global figure state, safe in containers and tests. A missing
value (None) is left out of a line (a gap) or drawn as no bar marked "n/a", never as 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from xdetox.components.interpret.stats import RocCurve
from xdetox.files import atomic_path


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _save(fig: Figure, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def roc_png(path: str | Path, curve: RocCurve, *, title: str, auc: float | None) -> None:
    fig = Figure(figsize=(4.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    label = "ROC" if auc is None else f"ROC (AUC {auc:.3f})"
    ax.plot(curve.fpr, curve.tpr, label=label)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)


def lines_png(
    path: str | Path,
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    highlight: str | None = None,
) -> None:
    """One line per series over ``x``; ``highlight`` (e.g. the all-language mean) drawn bold."""
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, (name, values) in enumerate(series.items()):
        bold = name == highlight
        ax.plot(
            list(x),
            _nan(values),
            marker="o",
            markersize=3,
            label=name,
            linewidth=2.5 if bold else 1.0,
            color="black" if bold else f"C{i % 10}",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(series) > 8 else 1)
    _save(fig, path)


def panels_png(
    path: str | Path,
    x: Sequence[float],
    panels: Sequence[tuple[str, Mapping[str, Sequence[float | None]]]],
    *,
    xlabel: str,
    title: str,
) -> None:
    """Several line panels stacked vertically sharing ``x`` (e.g. two alignment measures)."""
    fig = Figure(figsize=(7, 3.6 * len(panels)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (ylabel, series) in zip(axes, panels, strict=True):
        for i, (name, values) in enumerate(series.items()):
            ax.plot(list(x), _nan(values), marker="o", markersize=3, label=name, color=f"C{i % 10}")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(series) > 8 else 1)
        if all(float(v).is_integer() for v in x):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layer numbers
    axes[-1].set_xlabel(xlabel)
    axes[0].set_title(title, fontsize=10)
    _save(fig, path)


def grouped_bars_png(
    path: str | Path,
    categories: Sequence[str],
    groups: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    title: str,
) -> None:
    """Categories (e.g. languages) on the x axis, one bar per group (e.g. model) in each."""
    fig = Figure(figsize=(max(6.0, 0.3 * len(categories) * len(groups) + 2), 4.0))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / max(len(groups), 1)
    for g, (name, values) in enumerate(groups.items()):
        offset = (g - (len(groups) - 1) / 2) * width
        heights = _nan(values)
        xs = [i + offset for i in range(len(categories))]
        drawn = [(x, h) for x, h in zip(xs, heights, strict=True) if not math.isnan(h)]
        ax.bar([x for x, _ in drawn], [h for _, h in drawn], width, label=name, color=f"C{g}")
        for x, h in zip(xs, heights, strict=True):
            if math.isnan(h):
                ax.text(
                    x,
                    0.02,
                    "n/a",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color=f"C{g}",
                    transform=ax.get_xaxis_transform(),
                )
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
