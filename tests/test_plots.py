"""The shared grouped bar chart: missing values are marked, never drawn as 0."""

from __future__ import annotations

import math

import pytest

from xdetox.plots import grouped_bars_figure, png_bytes, save_png


def test_missing_values_draw_no_bar_and_say_so(tmp_path):
    fig = grouped_bars_figure(
        ["en", "de", "fr"],
        [("tox", {"base": [0.5, None, 0.25], "dpo": [0.125, 0.0, math.nan]})],
        title="t",
    )
    [ax] = fig.axes
    heights = sorted(bar.get_height() for bar in ax.patches)
    assert heights == [0.0, 0.125, 0.25, 0.5]  # a measured 0 is a bar; a missing value is not
    assert sorted(t.get_text() for t in ax.texts) == ["n/a", "n/a"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["en", "de", "fr"]
    assert png_bytes(fig).startswith(b"\x89PNG")
    save_png(fig, tmp_path / "bars.png")
    assert (tmp_path / "bars.png").read_bytes().startswith(b"\x89PNG")


def test_one_panel_per_measure_and_a_value_per_bar():
    panels = [("a", {"m": [1.0]}), ("b", {"m": [2.0]})]
    assert len(grouped_bars_figure(["en"], panels, title="t").axes) == 2
    with pytest.raises(ValueError, match="2 values for 1 bars"):
        grouped_bars_figure(["en"], [("a", {"m": [1.0, 2.0]})], title="t")
