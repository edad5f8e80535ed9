"""Report stage: aggregation by hand, disagreeing duplicates, HTML/Markdown contents, atomicity."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
from xdetox.components.report.aggregate import aggregate_metrics, compare_models
from xdetox.components.report.html_report import format_value, render_markdown, render_report
from xdetox.config import MetricsConfig
from xdetox.errors import DataError

SCORER = "offline lexicon scorer — a word list, not a trained classifier"


def metrics_row(model, language, emt, prob, avg, ppl, *, n_missing=0, insult_pct=None):
    row = {
        "model": model,
        "language": language,
        "scorer": "offline-lexicon",
        "n_prompts": 10,
        "n_samples": 250,
        "n_missing": n_missing,
        "n_prompts_unscored": 0,
        "expected_max_toxicity": emt,
        "expected_max_toxicity_std": 0.1,
        "toxicity_probability": prob,
        "avg_toxicity": avg,
        "threshold": 0.5,
        "perplexity": ppl,
        "perplexity_method": None if ppl is None else "causal-conditional",
        "dist_1": 0.5,
        "dist_2": 0.8,
        "dist_3": 0.9,
    }
    if insult_pct is not None:
        row["pct_INSULT_ge_thr"] = insult_pct
        row["count_INSULT_ge_thr"] = round(insult_pct * 2.5)
    return row


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# By hand — base: en (0.4, 0.5, 0.2, ppl 10), de (0.6, 0.7, 0.3, no ppl)
#   ALL: EMT 0.5, prob 0.6, avg 0.25, ppl 10 (en only, noted), n_samples 500, n_missing 2 + 0
# dpo: en (0.1, 0.0, 0.05, 12), de (0.2, 0.1, 0.07, 14) -> ALL 0.15, 0.05, 0.06, 13
BASE_EN = metrics_row("base", "en", 0.4, 0.5, 0.2, 10.0, n_missing=2, insult_pct=40.0)
BASE_DE = metrics_row("base", "de", 0.6, 0.7, 0.3, None, insult_pct=20.0)
DPO_EN = metrics_row("dpo", "en", 0.1, 0.0, 0.05, 12.0, insult_pct=4.0)
DPO_DE = metrics_row("dpo", "de", 0.2, 0.1, 0.07, 14.0, insult_pct=0.0)


@pytest.fixture
def csvs(tmp_path: Path) -> list[Path]:
    return [
        write_csv(tmp_path / "en.csv", [DPO_EN, BASE_EN]),
        write_csv(tmp_path / "de.csv", [BASE_DE, DPO_DE]),
    ]


def row(df: pd.DataFrame, model: str, language: str) -> pd.Series:
    selected = df[(df["model"] == model) & (df["language"] == language)]
    assert len(selected) == 1
    return selected.iloc[0]


# ------------------------------------------------------------------------------ aggregate
def test_aggregate_means_by_hand(csvs):
    df = aggregate_metrics(csvs)
    assert list(df[["model", "language"]].itertuples(index=False, name=None)) == [
        ("base", "de"),
        ("base", "en"),
        ("base", "ALL"),
        ("dpo", "de"),
        ("dpo", "en"),
        ("dpo", "ALL"),
    ]
    base = row(df, "base", "ALL")
    assert base["expected_max_toxicity"] == pytest.approx(0.5)
    assert base["toxicity_probability"] == pytest.approx(0.6)
    assert base["avg_toxicity"] == pytest.approx(0.25)
    assert base["pct_INSULT_ge_thr"] == pytest.approx(30.0)
    assert base["n_samples"] == 500 and base["n_missing"] == 2 and base["n_prompts"] == 20
    assert base["count_INSULT_ge_thr"] == 100 + 50
    assert base["n_languages"] == 2
    # Perplexity exists for en only: the mean is over en, and the row says so.
    assert base["perplexity"] == pytest.approx(10.0)
    assert base["languages_missing"] == "perplexity: de"
    assert base["scorer"] == "offline-lexicon" and base["threshold"] == 0.5
    dpo = row(df, "dpo", "ALL")
    assert dpo["expected_max_toxicity"] == pytest.approx(0.15)
    assert dpo["toxicity_probability"] == pytest.approx(0.05)
    assert dpo["avg_toxicity"] == pytest.approx(0.06)
    assert dpo["perplexity"] == pytest.approx(13.0)
    assert pd.isna(dpo["languages_missing"])
    assert math.isnan(row(df, "base", "de")["perplexity"])  # missing stays missing


def test_compare_models_deltas(csvs):
    comparison = compare_models(aggregate_metrics(csvs))
    assert set(comparison["model"]) == {"dpo"}
    all_row = row(comparison, "dpo", "ALL")
    assert all_row["expected_max_toxicity_base"] == pytest.approx(0.5)
    assert all_row["expected_max_toxicity_tuned"] == pytest.approx(0.15)
    assert all_row["delta_expected_max_toxicity"] == pytest.approx(-0.35)
    assert all_row["delta_toxicity_probability"] == pytest.approx(-0.55)
    # Base perplexity exists for en only: the ALL change is paired (en: 12 − 10), not
    # dpo ALL (13, en and de) − base ALL (10, en only).
    assert all_row["perplexity_tuned"] == pytest.approx(13.0)
    assert all_row["delta_perplexity"] == pytest.approx(2.0)
    assert all_row["delta_pct_INSULT_ge_thr"] == pytest.approx(2.0 - 30.0)
    de = row(comparison, "dpo", "de")
    assert de["delta_avg_toxicity"] == pytest.approx(0.07 - 0.3)
    assert math.isnan(de["delta_perplexity"])  # base has no perplexity for de: unknown
    with pytest.raises(DataError, match="baseline model 'tuned-a'"):
        compare_models(aggregate_metrics(csvs), baseline="tuned-a")


def test_identical_duplicates_are_merged(csvs, tmp_path):
    # The same row in a second file (a rerun) is fine; ALL rows in an input are recomputed.
    first = aggregate_metrics(csvs)
    again = write_csv(tmp_path / "again.csv", [BASE_EN])
    out = tmp_path / "aggregated.csv"
    write_metrics_csv(first, out)
    df = aggregate_metrics([*csvs, again, out])
    pd.testing.assert_frame_equal(df, first, check_dtype=False)


def test_disagreeing_duplicate_is_an_error(csvs, tmp_path):
    other = write_csv(tmp_path / "other.csv", [{**BASE_EN, "avg_toxicity": 0.21}])
    with pytest.raises(DataError) as info:
        aggregate_metrics([*csvs, other])
    message = str(info.value)
    assert message.startswith(f"{other}: ")
    assert "avg_toxicity" in message and str(csvs[0]) in message
    assert "'base'" in message and "'en'" in message


def test_missing_columns_name_the_file(csvs, tmp_path):
    bad = write_csv(
        tmp_path / "bad.csv", [{k: v for k, v in DPO_EN.items() if k != "avg_toxicity"}]
    )
    with pytest.raises(DataError, match=re.escape(f"{bad}: missing column(s) 'avg_toxicity'")):
        aggregate_metrics([*csvs, bad])
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(str(empty))):
        aggregate_metrics([empty])


def test_different_thresholds_are_refused(csvs, tmp_path):
    other = write_csv(tmp_path / "fr.csv", [{**BASE_EN, "language": "fr", "threshold": 0.7}])
    with pytest.raises(DataError, match="different threshold"):
        aggregate_metrics([*csvs, other])


# ------------------------------------------------------------------------------ HTML
def test_html_report_contents(csvs, tmp_path):
    df = aggregate_metrics(csvs)
    out = tmp_path / "report" / "report.html"
    render_report(
        df,
        out,
        title="Detox <toy> run",
        scorer_description=SCORER,
        run_info={"model": "tiny-gpt2 <random>", "recipe": "toy.yaml"},
    )
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "Detox &lt;toy&gt; run" in text and "<toy>" not in text  # escaped
    assert SCORER in text
    assert "tiny-gpt2 &lt;random&gt;" in text and "toy.yaml" in text
    # Table values: base ALL EMT 0.500, probability 60.0%, dpo ALL perplexity 13.00,
    # the change in EMT −0.350, and "—" where base/de has no perplexity.
    for value in ("0.500", "60.0%", "13.00", "-0.350", "-55.0 pp", "—"):
        assert f">{value}</td>" in text, value
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3  # EMT, average toxicity + probability, perplexity
    assert base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")
    assert 'src="http' not in text and "<link" not in text  # self-contained
    assert list(out.parent.iterdir()) == [out]  # no temporary file left


def test_html_report_writes_nothing_on_failure(csvs, tmp_path):
    df = aggregate_metrics(csvs).drop(columns=["expected_max_toxicity"])
    out = tmp_path / "report.html"
    with pytest.raises(DataError, match="expected_max_toxicity"):
        render_report(df, out, title="t", scorer_description=SCORER, run_info={})
    assert not out.exists()
    assert sorted(tmp_path.iterdir()) == sorted(csvs)  # no temporary file left either


def test_report_without_tuned_model_or_values(tmp_path):
    # Only a base model, every score missing: no comparison, no plot, no zeros invented.
    base = metrics_row("base", "en", None, None, None, None, n_missing=250)
    df = aggregate_metrics([write_csv(tmp_path / "m.csv", [base])])
    out = tmp_path / "r.html"
    render_report(df, out, title="t", scorer_description=SCORER, run_info={"model": "m"})
    text = out.read_text(encoding="utf-8")
    assert "No comparison" in text and "<img" not in text
    assert ">0.000</td>" not in text
    assert "250 of 250 samples have no TOXICITY score" in text


def test_format_value():
    assert format_value("toxicity_probability", 0.468) == "46.8%"
    assert format_value("delta_toxicity_probability", -0.429) == "-42.9 pp"
    assert format_value("delta_expected_max_toxicity", 0.01) == "+0.010"
    assert format_value("pct_INSULT_ge_thr", 12.345) == "12.3%"
    assert format_value("n_samples", 250.0) == "250"
    assert format_value("perplexity", float("nan")) == "—"
    assert format_value("count_INSULT_ge_thr", pd.NA) == "—"


# ------------------------------------------------------------------------------ Markdown
def test_markdown_table(csvs):
    text = render_markdown(
        aggregate_metrics(csvs), title="xdetox | toy", run_info={"model": "m"},
        scorer_description=SCORER,
    )  # fmt: skip
    assert text.startswith("# xdetox \\| toy\n")
    assert SCORER in text and "- **model:** m" in text
    lines = text.splitlines()
    base_all = next(line for line in lines if line.startswith("| base | ALL |"))
    assert "| 0.500 |" in base_all and "| 60.0% |" in base_all
    dpo_delta = next(line for line in lines if line.startswith("| dpo | ALL |") and "+2.00" in line)
    assert "| -0.350 |" in dpo_delta
    # Without a scorer description (the KFP component's call) it still renders.
    assert "**Scorer:**" not in render_markdown(aggregate_metrics(csvs), title="t")


# ------------------------------------------------------------------------------ end to end
def test_scores_to_report(tmp_path):
    """Score files -> metrics.csv per language -> aggregate -> HTML, with a missing score."""

    def record(model, language, prompt_id, index, toxicity):
        return {
            "model": model, "prompt_id": prompt_id, "language": language, "prompt": "p",
            "sample_index": index, "text": "a b c", "scorer": "offline-lexicon",
            "scores": {"TOXICITY": toxicity},
        }  # fmt: skip

    config = MetricsConfig(perplexity=False, diversity_tokenizer="whitespace")
    tables = []
    for language, (b, d) in {"en": (0.8, 0.1), "fr": (0.6, None)}.items():
        scores = tmp_path / f"{language}.jsonl"
        lines = [record("base", language, "p", 0, b), record("dpo", language, "p", 0, d)]
        scores.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
        table = tmp_path / "metrics" / f"{language}.csv"
        write_metrics_csv(compute_metrics([scores], config), table)
        tables.append(table)
    df = aggregate_metrics(tables)
    assert row(df, "base", "ALL")["expected_max_toxicity"] == pytest.approx(0.7)
    assert row(df, "dpo", "ALL")["expected_max_toxicity"] == pytest.approx(0.1)  # fr missing
    assert row(df, "dpo", "ALL")["languages_missing"] == (
        "expected_max_toxicity: fr; expected_max_toxicity_std: fr; toxicity_probability: fr; "
        "avg_toxicity: fr; count_TOXICITY_ge_thr: fr; pct_TOXICITY_ge_thr: fr; "
        # The bootstrap's change has no fr either (its interval columns are not listed again).
        "delta_expected_max_toxicity: fr; delta_toxicity_probability: fr; delta_avg_toxicity: fr"
    )
    out = tmp_path / "report.html"
    render_report(df, out, title="e2e", scorer_description=SCORER, run_info={})
    assert "data:image/png;base64," in out.read_text(encoding="utf-8")
