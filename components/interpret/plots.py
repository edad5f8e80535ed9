"""PNG plots of the interpretability stages, drawn on matplotlib's Agg canvas (``xdetox.plots``).

A missing value (None) is left out of a line (a gap) or drawn as no bar marked "n/a", never as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from xdetox.components.interpret.stats import RocCurve
from xdetox.plots import grouped_bars_figure, missing_as_nan, new_figure, save_png


def roc_png(path: str | Path, curve: RocCurve, *, title: str, auc: float | None) -> None:
    fig = new_figure(4.5, 4.5)
    ax = fig.subplots()
    label = "ROC" if auc is None else f"ROC (AUC {auc:.3f})"
    ax.plot(curve.fpr, curve.tpr, label=label)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    save_png(fig, path)


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
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    for i, (name, values) in enumerate(series.items()):
        bold = name == highlight
        ax.plot(
            list(x),
            missing_as_nan(values),
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
    save_png(fig, path)


def panels_png(
    path: str | Path,
    x: Sequence[float],
    panels: Sequence[tuple[str, Mapping[str, Sequence[float | None]]]],
    *,
    xlabel: str,
    title: str,
) -> None:
    """Several line panels stacked vertically sharing ``x`` (e.g. two alignment measures)."""
    fig = new_figure(7, 3.6 * len(panels))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (ylabel, series) in zip(axes, panels, strict=True):
        for i, (name, values) in enumerate(series.items()):
            ax.plot(list(x), missing_as_nan(values), marker="o", markersize=3, label=name,
                    color=f"C{i % 10}")  # fmt: skip
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(series) > 8 else 1)
        if all(float(v).is_integer() for v in x):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layer numbers
    axes[-1].set_xlabel(xlabel)
    axes[0].set_title(title, fontsize=10)
    save_png(fig, path)


def grouped_bars_png(
    path: str | Path,
    categories: Sequence[str],
    groups: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    title: str,
) -> None:
    """Categories (e.g. languages) on the x axis, one bar per group (e.g. model) in each."""
    save_png(grouped_bars_figure(categories, [(ylabel, groups)], title=title), path)
