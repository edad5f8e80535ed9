"""Several models in one evaluation: gathered score files, rows in evaluation order, each model's
change against the base and against a second model (sft_dpo vs sft, control vs tuned), and the
report's tables with a column per model, checked against numbers worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
from xdetox.components.report.aggregate import aggregate_metrics
from xdetox.components.report.html_report import build_html, render_markdown
from xdetox.components.report.model_tables import card_rows, control_verdicts, side_by_side
from xdetox.components.score.gather import gather, score_files
from xdetox.config import MetricsConfig
from xdetox.errors import DataError

# Per model, the TOXICITY of two samples for each of four prompts (one language).
SCORES = {
    "base": [(0.9, 0.1), (0.8, 0.2), (0.7, 0.6), (0.1, 0.0)],
    "sft": [(0.6, 0.1), (0.5, 0.2), (0.4, 0.3), (0.1, 0.0)],
    "sft_dpo": [(0.2, 0.1), (0.3, 0.2), (0.1, 0.0), (0.0, 0.0)],
    "control": [(0.8, 0.7), (0.9, 0.6), (0.7, 0.5), (0.6, 0.1)],
}
CONFIG = MetricsConfig(
    perplexity=False, diversity_tokenizer="whitespace", bootstrap_samples=400, bootstrap_seed=3
)


def write_scores(path: Path, model: str, language: str = "en", shift: float = 0.0) -> Path:
    lines = []
    for p, pair in enumerate(SCORES[model]):
        for i, toxicity in enumerate(pair):
            record = {
                "model": model,
                "language": language,
                "prompt_id": f"{language}-{p}",
                "prompt": "p",
                "sample_index": i,
                "text": "a b c",
                "scorer": "offline-lexicon",
                "scores": {"TOXICITY": min(1.0, toxicity + shift), "INSULT": toxicity},
            }
            lines.append(json.dumps(record) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def emt(model: str) -> float:
    return sum(max(pair) for pair in SCORES[model]) / len(SCORES[model])


@pytest.fixture
def gathered(tmp_path) -> Path:
    """base, sft, sft_dpo, control gathered one by one, as the sub-pipeline chains them."""
    folder = write_scores(tmp_path / "base.jsonl", "base")
    for index, model in enumerate(("sft", "sft_dpo", "control")):
        scores = write_scores(tmp_path / f"{model}.jsonl", model)
        target = tmp_path / f"gathered-{index}"
        gather(target, scores, folder)
        folder = target
    return folder


def test_gather_keeps_the_order_and_reads_a_file_or_a_folder(gathered, tmp_path):
    files = score_files(gathered)
    assert [f.name for f in files] == ["000.jsonl", "001.jsonl", "002.jsonl", "003.jsonl"]
    firsts = [json.loads(f.read_text().splitlines()[0])["model"] for f in files]
    assert firsts == ["base", "sft", "sft_dpo", "control"]
    assert score_files(tmp_path / "base.jsonl") == [tmp_path / "base.jsonl"]
    with pytest.raises(DataError, match="no score file"):
        score_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="without score files"):
        score_files(tmp_path / "empty")


def test_rows_follow_the_evaluation_order_and_second_comparisons_are_paired(gathered):
    comparisons = {"sft_dpo": "sft", "control": "sft_dpo"}
    df = compute_metrics(score_files(gathered), CONFIG, comparisons=comparisons)
    # Evaluation order, not alphabetical (control would come first by name).
    assert list(df["model"]) == ["base", "sft", "sft_dpo", "control"]
    assert list(df["model_order"]) == [0, 1, 2, 3]
    rows = df.set_index("model")
    for model in SCORES:
        assert rows.loc[model, "expected_max_toxicity"] == pytest.approx(emt(model))
    # Against the base: every model; against a second model: only those compared.
    assert rows.loc["sft", "delta_expected_max_toxicity"] == pytest.approx(emt("sft") - emt("base"))
    assert rows.loc["sft_dpo", "compared_with"] == "sft"
    assert rows.loc["control", "compared_with"] == "sft_dpo"
    assert pd.isna(rows.loc["sft", "compared_with"])
    # Every prompt paired: the paired estimate is the difference of the two rows.
    assert rows.loc["sft_dpo", "vs_delta_expected_max_toxicity"] == pytest.approx(
        emt("sft_dpo") - emt("sft")  # (0.2 + 0.3 + 0.1 + 0.0 - 0.6 - 0.5 - 0.4 - 0.1) / 4
    )
    assert rows.loc["sft_dpo", "vs_delta_expected_max_toxicity"] == pytest.approx(-0.25)
    assert rows.loc["control", "vs_delta_expected_max_toxicity"] == pytest.approx(0.6)
    # Probability >= 0.5: sft 2/4, sft_dpo 0/4.
    assert rows.loc["sft_dpo", "vs_delta_toxicity_probability"] == pytest.approx(-0.5)
    low = rows.loc["sft_dpo", "vs_delta_expected_max_toxicity_ci_low"]
    high = rows.loc["sft_dpo", "vs_delta_expected_max_toxicity_ci_high"]
    assert low <= -0.25 <= high and high < 0  # the DPO stage lowered EMT on every prompt
    assert rows.loc["sft_dpo", "vs_n_prompts_paired"] == 4


def test_a_comparison_with_a_model_without_scores_is_refused(gathered):
    with pytest.raises(DataError, match="without scores: ppo"):
        compute_metrics(score_files(gathered), CONFIG, comparisons={"sft_dpo": "ppo"})


def test_all_rows_combine_the_second_comparison_over_languages(tmp_path):
    tables = []
    for language, shift in (("en", 0.0), ("de", 0.05)):
        files = [write_scores(tmp_path / f"{m}-{language}.jsonl", m, language, shift)
                 for m in ("base", "sft", "sft_dpo")]  # fmt: skip
        df = compute_metrics(files, CONFIG, comparisons={"sft_dpo": "sft"})
        write_metrics_csv(df, tmp_path / f"{language}.csv")
        tables.append(tmp_path / f"{language}.csv")
    combined = aggregate_metrics(tables)
    assert list(combined["model"].drop_duplicates()) == ["base", "sft", "sft_dpo"]
    rows = combined.set_index(["model", "language"])
    per_language = [rows.loc[("sft_dpo", lang)] for lang in ("de", "en")]
    deltas = [r["vs_delta_expected_max_toxicity"] for r in per_language]
    ses = [r["vs_delta_expected_max_toxicity_se"] for r in per_language]
    all_row = rows.loc[("sft_dpo", "ALL")]
    assert all_row["vs_delta_expected_max_toxicity"] == pytest.approx(sum(deltas) / 2)
    combined_se = math.sqrt(ses[0] ** 2 + ses[1] ** 2) / 2
    assert all_row["vs_delta_expected_max_toxicity_se"] == pytest.approx(combined_se)
    assert all_row["vs_delta_expected_max_toxicity_ci_low"] == pytest.approx(
        sum(deltas) / 2 - 1.959964 * combined_se, rel=1e-5
    )
    assert all_row["compared_with"] == "sft"
    # Missing second comparisons are not "missing metrics" of the other models.
    assert pd.isna(rows.loc[("sft", "ALL"), "languages_missing"])


def test_side_by_side_and_card_tables_by_hand(gathered):
    df = compute_metrics(score_files(gathered), CONFIG, comparisons={"sft_dpo": "sft"})
    rows, headers = side_by_side(df)
    names = [h for _, h in headers]
    assert names[:4] == ["language", "metric", "base", "sft"]
    assert "sft_dpo − sft" in names and "control − base" in names
    emt_row = next(r for r in rows if r["metric"] == "EMT")
    assert emt_row["base"] == "0.625" and emt_row["sft_dpo"] == "0.150"
    # sft_dpo − sft = -0.25, with its interval after it
    assert emt_row["sft_dpo|vs"].startswith("-0.250 [")
    assert emt_row["sft|base"].startswith(f"{emt('sft') - emt('base'):+.3f} [")

    card, card_headers = card_rows(df)
    assert ("sft_dpo|stage", "Δ sft → sft_dpo") in card_headers
    assert ("sft|stage", "Δ base → sft") in card_headers
    toxicity = next(r for r in card if r["attribute"] == "TOXICITY")
    # >= 0.5: base 4 of 8 samples (0.9, 0.8, 0.7, 0.6), sft 2 (0.6, 0.5), sft_dpo 0.
    assert toxicity["base"] == "50.0% (4)"
    assert toxicity["sft"] == "25.0% (2)"
    assert toxicity["sft_dpo"] == "0.0% (0)"
    assert toxicity["sft|stage"] == "-25.0 pp"
    assert toxicity["sft_dpo|stage"] == "-25.0 pp"


def test_control_verdict_says_drift_or_detoxification(tmp_path):
    files = [write_scores(tmp_path / f"{m}.jsonl", m) for m in ("base", "sft_dpo", "control")]
    # The control stayed toxic while the tuned model dropped: more than drift.
    df = compute_metrics(files, CONFIG, comparisons={"control": "sft_dpo"})
    (verdict,) = control_verdicts(df)
    assert verdict.startswith("en: sft_dpo is less toxic than its control")
    # A control that dropped as far as the tuned model: not distinguishable from drift.
    SCORES["twin"] = SCORES["sft_dpo"]
    try:
        twin = write_scores(tmp_path / "twin.jsonl", "twin")
        text = twin.read_text().replace('"model": "twin"', '"model": "control"')
        twin.write_text(text)
        df = compute_metrics([files[0], files[1], twin], CONFIG, comparisons={"control": "sft_dpo"})
    finally:
        del SCORES["twin"]
    (verdict,) = control_verdicts(df)
    assert "the control moved toxicity as much as sft_dpo" in verdict
    assert "not distinguishable from drift" in verdict


def test_report_shows_every_model_and_the_control_note(gathered):
    df = compute_metrics(
        score_files(gathered), CONFIG, comparisons={"sft_dpo": "sft", "control": "sft_dpo"}
    )
    page = build_html(df, title="t", scorer_description="s", run_info={})
    assert '<section id="models"><h2>Models side by side</h2>' in page
    assert "sft_dpo − sft" in page and "Δ sft → sft_dpo" in page
    assert "Tuned vs control." in page
    markdown = render_markdown(df, title="t")
    assert "## Models side by side" in markdown and "| control − sft_dpo |" in markdown
    assert "**Tuned vs control:**" in markdown


def test_control_verdict_without_a_drop_says_there_is_nothing_to_explain(tmp_path):
    SCORES["flat"] = SCORES["base"]
    try:
        files = [write_scores(tmp_path / f"{m}.jsonl", m) for m in ("base", "flat", "control")]
        df = compute_metrics(files, CONFIG, comparisons={"control": "flat"})
    finally:
        del SCORES["flat"]
    (verdict,) = control_verdicts(df)
    assert verdict.startswith("en: flat shows no drop to explain")


def test_metrics_command_measures_a_model_against_a_second_one(tmp_path, capsys):
    from xdetox.cli.main import main

    files = [write_scores(tmp_path / f"{m}.jsonl", m) for m in ("base", "sft", "sft_dpo")]
    args = ["metrics", *(f"--scores={f}" for f in files), "--output", str(tmp_path / "out"),
            "--bootstrap-samples", "200", "--compare", "sft_dpo=sft"]  # fmt: skip
    assert main(args) == 0
    df = pd.read_csv(tmp_path / "out" / "metrics.csv").set_index("model")
    assert df.loc["sft_dpo", "compared_with"] == "sft"
    assert df.loc["sft_dpo", "vs_delta_expected_max_toxicity"] == pytest.approx(-0.25)
    assert main([*args[:-1], "sft_dpo"]) == 2
    assert "--compare: 'sft_dpo' is not MODEL=OTHER" in capsys.readouterr().err


def test_dose_series_runs_from_the_base_through_the_snapshots_in_training_order():
    from xdetox.components.report.dose_response import dose_response_png, dose_series

    rows = [
        {"model": m, "language": lang, "delta_expected_max_toxicity": d, "delta_nll_mean": c}
        for m, lang, d, c in [
            ("dpo_at50", "en", -0.2, 0.1), ("dpo_at25", "en", -0.1, 0.05), ("dpo", "en", -0.3, 0.2),
            ("dpo_at25", "de", 0.0, 0.01), ("dpo_at50", "de", -0.05, 0.02),
            ("dpo", "de", -0.1, 0.03),
            ("dpo", "ALL", -0.2, 0.1),
        ]
    ] + [{"model": "base", "language": lang} for lang in ("en", "de", "ALL")]  # fmt: skip
    model, series = dose_series(pd.DataFrame(rows))
    assert model == "dpo" and list(series) == ["de", "en"]  # no ALL line
    de = series["de"]
    assert [p.fraction for p in de] == [0.0, 0.25, 0.5, 1.0]
    assert [p.delta for p in de] == [0.0, 0.0, -0.05, -0.1]
    assert [p.english_delta for p in de] == [0.0, -0.1, -0.2, -0.3]
    assert [p.cost for p in de] == [0.0, 0.01, 0.02, 0.03]
    assert dose_response_png(pd.DataFrame(rows))
    assert dose_series(pd.DataFrame(rows[-4:])) is None  # no snapshots: no plot
