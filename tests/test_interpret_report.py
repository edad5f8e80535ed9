"""HTML report of the interpretability stages: sections, escaped text, embedded plots."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from xdetox.components.interpret.plots import grouped_bars_png, lines_png
from xdetox.components.interpret.report import build_html, section_from_dir, write_report
from xdetox.components.interpret.tables import write_csv
from xdetox.errors import DataError
from xdetox.files import write_json


def _stage(folder: Path) -> Path:
    folder.mkdir()
    write_csv(
        folder / "value_vectors.csv",
        [
            {
                "rank": 1,
                "layer": 0,
                "index": 3,
                "cosine": 0.91234567,
                "mean_activation": None,
                "kept": True,
                "top_tokens": json.dumps(["<script>alert(1)</script>", " idiot"]),
            },
            *(
                {
                    "rank": r,
                    "layer": 1,
                    "index": r,
                    "cosine": 0.5,
                    "mean_activation": 0.1,
                    "kept": False,
                    "top_tokens": "[]",
                }
                for r in range(2, 80)
            ),
        ],
        ("rank", "layer", "index", "cosine", "mean_activation", "kept", "top_tokens"),
    )
    write_csv(folder / "roc_curve.csv", [{"fpr": 0.0, "tpr": 0.0}], ("fpr", "tpr"))
    write_json(
        folder / "value_vectors_summary.json",
        {
            "n_kept": 36,
            "model_type": "gpt2 & <friends>",
            "top": [1, 2],
            "correlation": {"pearson_mean_cosine": 0.7, "tuned": "dpo"},
            "config": {"top_k": 100},
        },
    )
    lines_png(
        folder / "lines.png",
        [0, -1],
        {"en": [0.2, None], "ALL": [0.2, 0.1]},
        xlabel="offset",
        ylabel="tox",
        title="t",
        highlight="ALL",
    )
    grouped_bars_png(
        folder / "bars.png",
        ["en", "de"],
        {"base": [0.1, None], "dpo": [0.0, -0.1]},
        ylabel="a",
        title="b",
    )
    return folder


def test_report_holds_escaped_tables_facts_and_images(tmp_path):
    stage = _stage(tmp_path / "vv")
    out = tmp_path / "report.html"
    summary = write_report(out, {"Value vectors <top>": stage}, max_rows=10)
    page = out.read_text(encoding="utf-8")
    assert summary == {"sections": ["Value vectors <top>"], "tables": 1, "images": 2}
    assert "<h2>Value vectors &lt;top&gt;</h2>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "gpt2 &amp; &lt;friends&gt;" in page
    assert "correlation.pearson_mean_cosine" in page and "top_k" not in page
    assert "first 10 of 79 rows" in page
    assert "0.9123" in page and "—" in page  # formatted number; missing value as a dash
    assert "roc_curve.csv" not in page
    images = page.split("data:image/png;base64,")[1:]
    assert len(images) == 2
    assert base64.b64decode(images[0].split("'")[0])[:4] == b"\x89PNG"


def test_sections_can_be_built_by_hand():
    from xdetox.components.interpret.report import ReportSection

    page = build_html("T & T", [ReportSection("S", notes=["a < b"], facts={"x": 0.123456})])
    assert "<title>T &amp; T</title>" in page and "a &lt; b" in page and "0.1235" in page


def test_missing_stage_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        section_from_dir("x", tmp_path / "nowhere")
