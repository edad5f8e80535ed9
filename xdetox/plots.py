"""Grouped bar charts, the one plot the report and the interpretability stages share.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``): no display and no global
figure state shared between calls, safe in a container or a test run. A missing value (None or
NaN) draws no bar and is marked "n/a" above the axis, never drawn as 0: a 0 would read as a
measurement (no toxicity) where there was none.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xdetox.files import atomic_path

Groups = Mapping[str, Sequence[float | None]]
"""``{group (e.g. model): one value per category (e.g. language)}``."""


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (inches)."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def missing_as_nan(values: Sequence[float | None]) -> list[float]:
    """Floats with NaN for None, which matplotlib leaves out (a gap in a line)."""
    return [math.nan if v is None else float(v) for v in values]


def draw_grouped_bars(ax: Axes, categories: Sequence[str], groups: Groups) -> None:
    """Categories on the x axis, one bar per group in each; "n/a" where a value is missing."""
    width = 0.8 / max(len(groups), 1)
    for g, (name, values) in enumerate(groups.items()):
        if len(values) != len(categories):
            raise ValueError(f"group {name!r}: {len(values)} values for {len(categories)} bars")
        offset = (g - (len(groups) - 1) / 2) * width
        heights = missing_as_nan(values)
        xs = [i + offset for i in range(len(categories))]
        drawn = [(x, h) for x, h in zip(xs, heights, strict=True) if not math.isnan(h)]
        ax.bar([x for x, _ in drawn], [h for _, h in drawn], width, label=name, color=f"C{g}")
        for x, h in zip(xs, heights, strict=True):
            if math.isnan(h):
                # x in data units, y in axes units: just above the axis whatever the scale.
                ax.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize=7, color=f"C{g}",
                        transform=ax.get_xaxis_transform())  # fmt: skip
    ax.axhline(0, color="grey", linewidth=0.8)  # values may be negative (activations)
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def grouped_bars_figure(
    categories: Sequence[str], panels: Sequence[tuple[str, Groups]], *, title: str
) -> Figure:
    """One panel per ``(y label, groups)``, stacked, sharing the categories; ``title`` on top."""
    n_groups = max((len(groups) for _, groups in panels), default=1)
    fig = new_figure(max(6.0, 0.35 * len(categories) * n_groups + 2), max(4.0, 3.2 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (ylabel, groups) in zip(axes, panels, strict=True):
        draw_grouped_bars(ax, categories, groups)
        ax.set_ylabel(ylabel)
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG (100 dpi)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def save_png(fig: Figure, path: str | Path) -> None:
    """Write the figure as PNG at ``path``, atomically (a reader never sees half a file)."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
