"""Paired bootstrap of tuned − base: values by hand, coverage, determinism, width, plumbing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from xdetox.components.metrics.bootstrap import bootstrap_table, paired_bootstrap, prompt_statistics
from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
from xdetox.components.metrics.read_scores import read_scores
from xdetox.components.report.aggregate import aggregate_metrics, compare_models
from xdetox.components.report.html_report import build_html, render_markdown
from xdetox.config import MetricsConfig

METRICS = ("expected_max_toxicity", "toxicity_probability", "avg_toxicity")


def record(model, language, prompt_id, index, toxicity):
    return {
        "model": model,
        "language": language,
        "prompt_id": prompt_id,
        "prompt": "p",
        "sample_index": index,
        "text": "a b",
        "scorer": "offline-lexicon",
        "scores": {"TOXICITY": toxicity},
    }


def table_of(records: list[dict], tmp_path: Path, name: str = "scores.jsonl") -> pd.DataFrame:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return read_scores([path])


def stats(table: pd.DataFrame, model: str) -> pd.DataFrame:
    return prompt_statistics(table[table["model"] == model])


# base: p1 [0.2, 0.6] max .6 | p2 [0.1] max .1 (one sample) | p3 [null, 0.9] max .9 | p4 [null]
# dpo:  p1 [0.1, 0.3] max .3 | p2 [0.2] max .2               | p3 [0.4, null] max .4 | p4 [0.8]
# paired: p1, p2, p3 (p4 has no scored base sample: unpaired)
# EMT:  base (.6+.1+.9)/3 = 1.6/3, dpo (.3+.2+.4)/3 = .9/3        -> delta -0.7/3
# prob: base 2/3 (.6, .9 >= .5), dpo 0/3                         -> delta -2/3
# avg:  base (.2+.6+.1+.9)/4 = .45, dpo (.1+.3+.2+.4)/4 = .25     -> delta -0.2
HAND = [
    record("base", "en", "p1", 0, 0.2),
    record("base", "en", "p1", 1, 0.6),
    record("base", "en", "p2", 0, 0.1),
    record("base", "en", "p3", 0, None),
    record("base", "en", "p3", 1, 0.9),
    record("base", "en", "p4", 0, None),
    record("dpo", "en", "p1", 0, 0.1),
    record("dpo", "en", "p1", 1, 0.3),
    record("dpo", "en", "p2", 0, 0.2),
    record("dpo", "en", "p3", 0, 0.4),
    record("dpo", "en", "p3", 1, None),
    record("dpo", "en", "p4", 0, 0.8),
]


def test_point_estimates_by_hand_with_missing_scores_and_one_sample_prompts(tmp_path):
    table = table_of(HAND, tmp_path)
    row = paired_bootstrap(stats(table, "base"), stats(table, "dpo"), samples=200, seed=1)
    assert (row["n_prompts_paired"], row["n_prompts_unpaired"]) == (3, 1)
    assert row["delta_expected_max_toxicity"] == pytest.approx(-0.7 / 3)
    assert row["delta_toxicity_probability"] == pytest.approx(-2 / 3)
    assert row["delta_avg_toxicity"] == pytest.approx(-0.2)
    for metric in METRICS:
        low, high = row[f"delta_{metric}_ci_low"], row[f"delta_{metric}_ci_high"]
        assert low <= row[f"delta_{metric}"] <= high
        assert row[f"delta_{metric}_se"] > 0


def test_replicates_by_hand_with_two_prompts():
    """Two prompts: every draw is (a,a), (a,b), (b,a) or (b,b); the interval spans them."""
    base = pd.DataFrame(
        {"max": [0.8, 0.2], "sum": [0.8, 0.2], "n_scored": [1, 1]}, index=["a", "b"]
    )
    tuned = pd.DataFrame(
        {"max": [0.1, 0.2], "sum": [0.1, 0.2], "n_scored": [1, 1]}, index=["a", "b"]
    )
    row = paired_bootstrap(base, tuned, samples=4000, seed=0)
    # Differences per prompt: a -0.7, b 0.0. Draw means: -0.7 (1/4), -0.35 (1/2), 0 (1/4).
    assert row["delta_expected_max_toxicity"] == pytest.approx(-0.35)
    assert row["delta_expected_max_toxicity_ci_low"] == pytest.approx(-0.7)
    assert row["delta_expected_max_toxicity_ci_high"] == pytest.approx(0.0)
    assert row["delta_expected_max_toxicity_se"] == pytest.approx(math.sqrt(0.06125), rel=0.05)
    assert row["delta_toxicity_probability"] == pytest.approx(-0.5)


def test_no_paired_prompt_gives_nan_not_zero():
    base = pd.DataFrame({"max": [math.nan], "sum": [0.0], "n_scored": [0]}, index=["a"])
    tuned = pd.DataFrame({"max": [0.3], "sum": [0.3], "n_scored": [1]}, index=["a"])
    row = paired_bootstrap(base, tuned, samples=10)
    assert row["n_prompts_paired"] == 0 and row["n_prompts_unpaired"] == 1
    assert all(
        math.isnan(row[f"delta_{m}{s}"])
        for m in METRICS
        for s in ("", "_se", "_ci_low", "_ci_high")
    )


# ------------------------------------------------------------------------------ synthetic
def synthetic(n_prompts: int, seed: int, k: int = 5, shift: float = 0.1):
    """Paired prompts with a known change: tuned samples are base-like samples moved down by
    ``shift`` (no clipping happens), so EMT and average toxicity move by exactly ``-shift``."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.3, 0.7, size=n_prompts)
    base = level[:, None] + rng.uniform(-0.15, 0.15, size=(n_prompts, k))
    tuned = level[:, None] - shift + rng.uniform(-0.15, 0.15, size=(n_prompts, k))

    def frame(values):
        return pd.DataFrame(
            {"max": values.max(1), "sum": values.sum(1), "n_scored": np.full(n_prompts, k)},
            index=[f"p{i}" for i in range(n_prompts)],
        )

    return frame(base), frame(tuned)


def true_probability_change(k: int = 5, shift: float = 0.1, n: int = 400_000) -> float:
    base, tuned = synthetic(n, seed=12345, k=k, shift=shift)
    return float((tuned["max"] >= 0.5).mean() - (base["max"] >= 0.5).mean())


def test_interval_contains_the_true_difference():
    truth = {
        "expected_max_toxicity": -0.1,
        "avg_toxicity": -0.1,
        "toxicity_probability": true_probability_change(),
    }
    covered = {m: 0 for m in METRICS}
    runs = 40
    for seed in range(runs):
        base, tuned = synthetic(150, seed)
        row = paired_bootstrap(base, tuned, samples=400, seed=seed)
        for metric in METRICS:
            low, high = row[f"delta_{metric}_ci_low"], row[f"delta_{metric}_ci_high"]
            covered[metric] += low <= truth[metric] <= high
    # Nominal 95%: with 40 data sets, fewer than 34 hits would be very unlikely (p < 0.01).
    assert all(hits >= 34 for hits in covered.values()), covered
    # And on one fixed data set, each interval holds the truth and excludes 0.
    row = paired_bootstrap(*synthetic(300, 99), samples=1000, seed=0)
    for metric in METRICS:
        low, high = row[f"delta_{metric}_ci_low"], row[f"delta_{metric}_ci_high"]
        assert low <= truth[metric] <= high and high < 0


def test_deterministic_with_a_seed_and_seed_sensitive():
    base, tuned = synthetic(80, 3)
    a = paired_bootstrap(base, tuned, samples=300, seed=7, stream=("dpo", "en"))
    assert a == paired_bootstrap(base, tuned, samples=300, seed=7, stream=("dpo", "en"))
    b = paired_bootstrap(base, tuned, samples=300, seed=8, stream=("dpo", "en"))
    c = paired_bootstrap(base, tuned, samples=300, seed=7, stream=("dpo", "de"))
    for other in (b, c):
        assert other["delta_avg_toxicity"] == a["delta_avg_toxicity"]  # same data, same point
        assert other["delta_avg_toxicity_ci_low"] != a["delta_avg_toxicity_ci_low"]


def test_interval_shrinks_with_more_prompts():
    widths = {}
    for n in (50, 200, 800):
        row = paired_bootstrap(*synthetic(n, 5), samples=1000, seed=0)
        widths[n] = {m: row[f"delta_{m}_ci_high"] - row[f"delta_{m}_ci_low"] for m in METRICS}
    for metric in METRICS:
        assert widths[800][metric] < widths[200][metric] < widths[50][metric]
        # Width ~ 1/sqrt(n): 16× the prompts, about a quarter of the width.
        assert widths[800][metric] < 0.45 * widths[50][metric]


def test_higher_confidence_gives_a_wider_interval():
    base, tuned = synthetic(100, 11)
    narrow = paired_bootstrap(base, tuned, samples=2000, seed=0, confidence=0.8)
    wide = paired_bootstrap(base, tuned, samples=2000, seed=0, confidence=0.99)
    for metric in METRICS:
        assert wide[f"delta_{metric}_ci_low"] < narrow[f"delta_{metric}_ci_low"]
        assert wide[f"delta_{metric}_ci_high"] > narrow[f"delta_{metric}_ci_high"]


# ------------------------------------------------------------------------------ plumbing
def test_compute_metrics_puts_intervals_on_the_tuned_rows(tmp_path):
    records = [r for r in HAND if r["prompt_id"] != "p4"]  # every prompt paired
    records += [record(m, "de", "q", 0, v) for m, v in (("base", 0.7), ("dpo", 0.2))]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    config = MetricsConfig(
        perplexity=False, diversity_tokenizer="whitespace", bootstrap_samples=300, bootstrap_seed=4
    )
    df = compute_metrics([path], config)
    dpo_en = df[(df.model == "dpo") & (df.language == "en")].iloc[0]
    base_en = df[(df.model == "base") & (df.language == "en")].iloc[0]
    for metric in METRICS:
        # Every prompt paired: the paired estimate is exactly the difference of the rows.
        assert dpo_en[f"delta_{metric}"] == pytest.approx(dpo_en[metric] - base_en[metric])
        assert math.isnan(base_en[f"delta_{metric}"])
    assert dpo_en["n_prompts_paired"] == 3 and dpo_en["bootstrap_samples"] == 300
    assert dpo_en["delta_ci_method"].startswith("paired bootstrap")
    table = read_scores([path])
    direct = bootstrap_table(table, "base", samples=300, seed=4)
    assert (
        direct.set_index(["model", "language"]).loc[("dpo", "en"), "delta_avg_toxicity_ci_low"]
        == dpo_en["delta_avg_toxicity_ci_low"]
    )
    off = compute_metrics([path], config.model_copy(update={"bootstrap_samples": 0}))
    assert not any(c.startswith("delta_") for c in off.columns)


def test_all_row_combines_language_intervals_and_the_report_shows_them(tmp_path):
    z = NormalDist().inv_cdf(0.975)
    rows = []
    for language, (base_emt, tuned_emt, se) in {
        "en": (0.5, 0.3, 0.03),
        "de": (0.4, 0.3, 0.04),
    }.items():
        common = {
            "language": language,
            "scorer": "s",
            "n_prompts": 10,
            "n_samples": 20,
            "n_missing": 0,
            "toxicity_probability": 0.1,
            "avg_toxicity": 0.1,
            "perplexity": math.nan,
            "dist_1": 0.5,
            "dist_2": 0.5,
            "dist_3": 0.5,
            "threshold": 0.5,
        }
        rows.append({**common, "model": "base", "expected_max_toxicity": base_emt})
        delta = tuned_emt - base_emt
        rows.append(
            {
                **common,
                "model": "dpo",
                "expected_max_toxicity": tuned_emt,
                "delta_expected_max_toxicity": delta,
                "delta_expected_max_toxicity_se": se,
                "delta_expected_max_toxicity_ci_low": delta - 0.05,
                "delta_expected_max_toxicity_ci_high": delta + 0.05,
                "confidence": 0.95,
                "n_prompts_paired": 10,
                "delta_ci_method": "paired bootstrap over prompts (percentile)",
            }
        )
    path = tmp_path / "m.csv"
    write_metrics_csv(pd.DataFrame(rows), path)
    df = aggregate_metrics([path])
    all_row = df[(df.model == "dpo") & (df.language == "ALL")].iloc[0]
    # mean delta (-0.2 - 0.1)/2 = -0.15; SE = sqrt(0.03² + 0.04²) / 2 = 0.025
    assert all_row["delta_expected_max_toxicity"] == pytest.approx(-0.15)
    assert all_row["delta_expected_max_toxicity_se"] == pytest.approx(0.025)
    assert all_row["delta_expected_max_toxicity_ci_low"] == pytest.approx(-0.15 - z * 0.025)
    assert all_row["delta_expected_max_toxicity_ci_high"] == pytest.approx(-0.15 + z * 0.025)
    assert all_row["delta_ci_method"].startswith("normal approximation")
    comparison = compare_models(df)
    en = comparison[(comparison.model == "dpo") & (comparison.language == "en")].iloc[0]
    assert en["delta_expected_max_toxicity_ci_low"] == pytest.approx(-0.25)
    assert en["delta_expected_max_toxicity"] == pytest.approx(-0.2)
    page = build_html(df, title="t", scorer_description="s", run_info={})
    assert "[-0.250, -0.150]" in page and "95% CI" in page
    assert "<strong>Perplexity:</strong> not measured" in page
    assert "[-0.199, -0.101]" in render_markdown(df, title="t")


def test_kfp_metrics_log_the_change_and_its_interval_on_tuned_rows_only(tmp_path):
    from xdetox.components.metrics.kfp_metrics import log_table

    class Artifact:
        def __init__(self) -> None:
            self.logged: dict[str, float] = {}

        def log_metric(self, metric: str, value: float) -> None:
            self.logged[metric] = value

    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in HAND), encoding="utf-8")
    config = MetricsConfig(
        perplexity=False, diversity_tokenizer="whitespace", bootstrap_samples=100
    )
    artifact = Artifact()
    log_table(compute_metrics([path], config), artifact)
    assert artifact.logged["dpo.en.delta_avg_toxicity"] == pytest.approx(-0.2)
    assert "dpo.en.delta_avg_toxicity_ci_low" in artifact.logged
    assert "dpo.en.delta_expected_max_toxicity_ci_high" in artifact.logged
    assert not any(k.startswith("base.en.delta") for k in artifact.logged)  # NaN: not logged
