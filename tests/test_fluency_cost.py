"""Fluency cost: the base model's NLL of each model's continuations, per prompt, and the paired
bootstrap of its change, checked by hand with known per-sample perplexities."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from xdetox.components.metrics import per_language
from xdetox.components.metrics.fluency_cost import (
    fluency_cost_table,
    nll_of_perplexities,
    nll_table,
)
from xdetox.components.metrics.per_language import compute_metrics
from xdetox.components.metrics.perplexity import Fluency, summarize_perplexities
from xdetox.components.report.aggregate import aggregate_metrics
from xdetox.components.report.model_tables import side_by_side
from xdetox.config import MetricsConfig

# (model, prompt, sample) → NLL in nats/token; perplexity = e^NLL.
NLL = {
    ("base", "p0", 0): 1.0, ("base", "p0", 1): 2.0,  # prompt mean 1.5
    ("base", "p1", 0): 1.0, ("base", "p1", 1): 1.0,  # 1.0
    ("dpo", "p0", 0): 2.0, ("dpo", "p0", 1): 3.0,  # 2.5: +1.0
    ("dpo", "p1", 0): 1.5, ("dpo", "p1", 1): None,  # empty continuation: 1.5, +0.5
}  # fmt: skip


def scores_table(tmp_path):
    lines = [
        json.dumps({"model": m, "language": "en", "prompt_id": p, "prompt": "x", "sample_index": i,
                    "text": "" if v is None else "a b", "scorer": "offline-lexicon",
                    "scores": {"TOXICITY": 0.1}}) + "\n"
        for (m, p, i), v in NLL.items()
    ]  # fmt: skip
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_nll_is_the_log_of_kept_perplexities():
    values = nll_of_perplexities(pd.Series([math.e, math.nan, 1e5, math.e**2]), 1e4)
    assert values[0] == pytest.approx(1.0) and values[3] == pytest.approx(2.0)
    assert math.isnan(values[1]) and math.isnan(values[2])  # empty; dropped at max_perplexity


def test_fluency_cost_by_hand():
    table = pd.DataFrame([{"model": m, "language": "en", "prompt_id": p} for (m, p, _i) in NLL])
    nll = pd.Series([math.nan if v is None else v for v in NLL.values()], index=table.index)
    means = nll_table(table, nll).set_index("model")["nll_mean"]
    assert means["base"] == pytest.approx((1.5 + 1.0) / 2)
    assert means["dpo"] == pytest.approx((2.5 + 1.5) / 2)
    (row,) = fluency_cost_table(table, nll, "base", samples=2000, seed=1).to_dict("records")
    assert row["delta_nll_mean"] == pytest.approx(0.75)  # mean of the prompts' +1.0 and +0.5
    # Two prompts: each replicate is the mean of two draws from {+1.0, +0.5}.
    assert row["delta_nll_mean_ci_low"] == pytest.approx(0.5)
    assert row["delta_nll_mean_ci_high"] == pytest.approx(1.0)
    assert row["delta_nll_mean_se"] == pytest.approx(0.25 / math.sqrt(2), rel=0.1)


def test_compute_metrics_puts_the_fluency_cost_beside_the_toxicity_change(tmp_path, monkeypatch):
    def known_perplexities(table, source, **kwargs):
        values = [math.nan if v is None else math.exp(v) for v in NLL.values()]
        samples = pd.Series(values, index=table.index)
        summary = [
            {"model": m, "language": "en", **summarize_perplexities(list(g), 1e4)}
            for m, g in samples.groupby(table["model"])
        ]
        return Fluency(pd.DataFrame(summary), samples)

    monkeypatch.setattr(per_language, "perplexity_metrics", known_perplexities)
    config = MetricsConfig(
        perplexity=True, perplexity_model="m", diversity_tokenizer="whitespace",
        bootstrap_samples=500,
    )  # fmt: skip
    df = compute_metrics([scores_table(tmp_path)], config)
    rows = df.set_index("model")
    assert rows.loc["base", "nll_mean"] == pytest.approx(1.25)
    assert rows.loc["dpo", "delta_nll_mean"] == pytest.approx(0.75)
    assert np.isnan(rows.loc["base", "delta_nll_mean"])
    path = tmp_path / "en.csv"
    per_language.write_metrics_csv(df, path)
    combined = aggregate_metrics([path]).set_index(["model", "language"])
    assert combined.loc[("dpo", "ALL"), "delta_nll_mean"] == pytest.approx(0.75)
    rows_, _headers = side_by_side(combined.reset_index())
    nll_row = next(r for r in rows_ if r["metric"].startswith("NLL") and r["language"] == "en")
    assert nll_row["base"] == "1.250" and nll_row["dpo|base"].startswith("+0.750 [")
