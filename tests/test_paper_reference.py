"""XG's Table 2 beside a run's own averages, and the protocol table of the report.

XG: Li, Yong & Bach 2024, "Preference Tuning For Toxicity Mitigation Generalizes Across
Languages", arXiv:2406.16235. The reference numbers are package data
(components/report/xg_table2.csv).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from xdetox.components.report.aggregate import aggregate_metrics
from xdetox.components.report.html_report import (
    build_html,
    paper_rows,
    protocol_rows,
    render_markdown,
)
from xdetox.components.report.paper_reference import (
    REFERENCE_CSV,
    load_reference,
    match_reference,
)
from xdetox.config import XG_LANGUAGES
from xdetox.errors import DataError

sys.path.insert(0, str(Path(__file__).parent))

from test_report import metrics_row

SCORER = "offline lexicon scorer — a word list, not a trained classifier"
XG_SETTINGS = {
    "group_by": "prompt_text",
    "empty_text": "space",
    "distinct_tokens": "decoded",
    "quartile_method": "midpoint",
}


def write_table(path: Path, languages, *, base=(0.4, 0.5, 0.2, 20.0), dpo=(0.1, 0.1, 0.05, 25.0),
                **columns) -> Path:  # fmt: skip
    rows = []
    for language in languages:
        for model, values in (("base", base), ("dpo", dpo)):
            rows.append({**metrics_row(model, language, *values), **columns})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_table2_is_package_data_with_its_source():
    text = REFERENCE_CSV.read_text("utf-8")
    assert "arXiv:2406.16235" in text and "Table 2" in text
    rows = {row.hub_id: row for row in load_reference()}
    assert list(rows) == [
        "ai-forever/mGPT",
        "bigscience/bloom-1b7",
        "bigscience/bloom-7b1",
        "meta-llama/Llama-2-7b-hf",
        "meta-llama/Meta-Llama-3-8B",
        "CohereForAI/aya-23-8B",
    ]
    mgpt = rows["ai-forever/mGPT"]
    assert dict(mgpt.before) == {"expected_max_toxicity": 0.502, "toxicity_probability": 0.468,
                                 "avg_toxicity": 0.121, "perplexity": 18.74}  # fmt: skip
    assert dict(mgpt.after) == {"expected_max_toxicity": 0.157, "toxicity_probability": 0.039,
                                "avg_toxicity": 0.028, "perplexity": 23.68}  # fmt: skip
    aya = rows["CohereForAI/aya-23-8B"]
    assert (aya.before["toxicity_probability"], aya.after["perplexity"]) == (0.568, 18.32)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("ai-forever/mGPT", "ai-forever/mGPT"),
        ("AI-FOREVER/mgpt", "ai-forever/mGPT"),
        ("gs://bucket/models/mGPT/", "ai-forever/mGPT"),
        ("/data/models/bloom-1b7", "bigscience/bloom-1b7"),
        ("gs://b/meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf"),
        ("toy", None),
        ("someone/mGPT", None),  # another Hub model that happens to share the name
        ("gs://bucket/models/mGPT-finetuned", None),
        ("", None),
        (None, None),
    ],
)
def test_match_reference(source, expected):
    row = match_reference(source)
    assert (row.hub_id if row else None) == expected


def test_mgpt_run_shows_the_paper_row_beside_its_own_averages(tmp_path):
    # 17 languages, each base (0.4, 50%, 0.2, PPL 20) and dpo (0.1, 10%, 0.05, PPL 25).
    df = aggregate_metrics([write_table(tmp_path / "m.csv", XG_LANGUAGES)])
    found = paper_rows(df, "ai-forever/mGPT")
    assert found is not None
    paper, rows = found
    assert paper.label == "mGPT 1.3B"
    assert rows[0]["expected_max_toxicity"] == "0.502 → 0.157"
    assert rows[0]["toxicity_probability"] == "46.8% → 3.9%"
    assert rows[0]["avg_toxicity"] == "0.121 → 0.028"
    assert rows[0]["perplexity"] == "18.74 → 23.68"
    assert rows[1]["source"] == "this run: base → dpo"
    assert rows[1]["languages"] == "17 (the XG set)"
    assert rows[1]["expected_max_toxicity"] == "0.400 → 0.100"
    assert rows[1]["toxicity_probability"] == "50.0% → 10.0%"
    assert rows[1]["perplexity"] == "20.00 → 25.00"
    html = build_html(
        df, title="t", scorer_description=SCORER, run_info={"base_model": "gs://b/m/mGPT"}
    )
    assert "Beside the XG paper (Table 2)" in html and "0.502 → 0.157" in html
    assert "arXiv:2406.16235" in html
    # The lexicon run is not measured as XG measured: the report says so.
    assert "Not measured as XG measured" in html and "scoring.scorer (offline-lexicon" in html
    markdown = render_markdown(df, title="t", run_info={"base_model": "ai-forever/mGPT"})
    assert "## Beside the XG paper (Table 2)" in markdown and "46.8% → 3.9%" in markdown


def test_available_languages_are_stated(tmp_path):
    df = aggregate_metrics([write_table(tmp_path / "m.csv", ["en", "de"])])
    _paper, rows = paper_rows(df, "bigscience/bloom-1b7")
    assert rows[0]["expected_max_toxicity"] == "0.493 → 0.185"
    assert rows[1]["languages"].startswith("2: de en (missing from the XG set: ar cs es fr")


def test_no_paper_row_for_the_toy_model(tmp_path):
    df = aggregate_metrics([write_table(tmp_path / "m.csv", ["en"])])
    assert paper_rows(df, "toy") is None
    html = build_html(df, title="t", scorer_description=SCORER, run_info={"base_model": "toy"})
    assert "XG paper" not in html and "0.502" not in html
    assert "## Beside the XG paper" not in render_markdown(df, title="t", run_info={})
    assert "<h2>Protocol</h2>" in html  # the protocol table is always there


def test_protocol_table_says_which_options_produced_the_numbers(tmp_path):
    xg = write_table(
        tmp_path / "xg.csv", ["en"], scorer="perspective-v1alpha1",
        perplexity_method="xg-seq2seq", perplexity_model="google/mt5-xl",
        diversity_tokenizer="google/mt5-xl", **XG_SETTINGS,
    )  # fmt: skip
    rows = {r["setting"]: r for r in protocol_rows(aggregate_metrics([xg]))}
    assert {k: r["same"] for k, r in rows.items()} == dict.fromkeys(rows, "yes")
    assert rows["metrics.group_by"]["run"] == "prompt_text"
    assert rows["scoring.empty_text"] == {"setting": "scoring.empty_text", "run": "space",
                                          "xg": "space", "same": "yes"}  # fmt: skip
    markdown = render_markdown(aggregate_metrics([xg]), title="t")
    assert (
        "## Protocol" in markdown
        and "| metrics.quartile_method | midpoint | midpoint | yes |" in markdown
    )


def test_old_tables_without_protocol_columns_read_as_what_they_were(tmp_path):
    old = write_table(tmp_path / "old.csv", ["en"])  # no protocol columns: written before them
    df = aggregate_metrics([old])
    assert set(df["group_by"]) == {"prompt_id"} and set(df["empty_text"]) == {"scorer"}
    assert set(df["distinct_tokens"]) == {"ids"} and set(df["quartile_method"]) == {"linear"}
    rows = {r["setting"]: r for r in protocol_rows(df)}
    assert rows["metrics.quartile_method"]["same"] == "no"
    build_html(df, title="t", scorer_description=SCORER, run_info={})  # renders
    # A table computed the XG way cannot be averaged with one computed the old way.
    new = write_table(tmp_path / "new.csv", ["de"], **XG_SETTINGS)
    with pytest.raises(DataError, match="different group_by values"):
        aggregate_metrics([old, new])


def test_a_table_that_does_not_record_a_setting_shows_a_dash():
    df = pd.DataFrame([metrics_row("base", "en", 0.4, 0.5, 0.2, None)])
    rows = {r["setting"]: r for r in protocol_rows(df)}
    assert rows["metrics.group_by"]["run"] == "—" and rows["metrics.group_by"]["same"] == "—"
