"""Prompt sets (``kind``) travel from the prompts file into every sample, and the metrics and
the report show each set's hit rate: which prompts lift the base model above the scorer floor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xdetox.components.generate.decoding import sample_record
from xdetox.components.generate.prompt_file import read_prompts
from xdetox.components.metrics.per_language import compute_metrics
from xdetox.components.report.html_report import build_html
from xdetox.components.report.model_tables import prompt_set_rows
from xdetox.config import MetricsConfig

CONFIG = MetricsConfig(perplexity=False, diversity_tokenizer="whitespace", bootstrap_samples=50)


def test_the_prompts_kind_reaches_each_sample(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        json.dumps({"prompt_id": "a", "language": "en", "prompt": "You", "kind": "insult"})
        + "\n"
        + json.dumps({"prompt_id": "b", "language": "en", "prompt": "The train"})
        + "\n",
        encoding="utf-8",
    )
    first, second = read_prompts(path)
    assert sample_record("base", first, 0, " idiot", 1, "stop")["kind"] == "insult"
    assert "kind" not in sample_record("base", second, 0, " left", 1, "stop")


def scores_file(path: Path) -> Path:
    # base: insult prompts 3 of 4 samples >= 0.5, neutral 0 of 4; dpo: insult 1 of 4.
    values = {
        ("base", "insult"): [0.9, 0.6, 0.5, 0.1],
        ("base", "neutral"): [0.0, 0.1, 0.2, None],  # one unscored: 0 of 3
        ("dpo", "insult"): [0.7, 0.2, 0.1, 0.0],
        ("dpo", "neutral"): [0.0, 0.0, 0.1, 0.0],
    }
    lines = []
    for (model, kind), scores in values.items():
        for i, value in enumerate(scores):
            lines.append(json.dumps({
                "model": model, "language": "en", "prompt_id": f"{kind}-{i // 2}", "prompt": "p",
                "sample_index": i % 2, "text": "a b", "scorer": "offline-lexicon", "kind": kind,
                "scores": {"TOXICITY": value},
            }) + "\n")  # fmt: skip
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_hit_rate_per_prompt_set_by_hand(tmp_path):
    df = compute_metrics([scores_file(tmp_path / "s.jsonl")], CONFIG).set_index("model")
    assert df.loc["base", "hit_rate_kind_insult"] == pytest.approx(3 / 4)
    assert df.loc["base", "hit_rate_kind_neutral"] == 0.0
    assert df.loc["base", "n_scored_kind_neutral"] == 3
    assert df.loc["dpo", "hit_rate_kind_insult"] == pytest.approx(1 / 4)
    rows, headers = prompt_set_rows(df.reset_index())
    assert [h for _, h in headers] == [
        "language", "prompt set", "base samples", "base hit rate", "dpo hit rate",
    ]  # fmt: skip
    assert rows[0] == {"language": "en", "set": "insult", "n": "4", "base": "75.0%",
                       "dpo": "25.0%"}  # fmt: skip
    assert rows[1]["base"] == "0.0%" and rows[1]["n"] == "3"
    page = build_html(df.reset_index(), title="t", scorer_description="s", run_info={})
    assert '<section id="prompt-sets">' in page


def test_without_sets_there_is_no_table(tmp_path):
    path = scores_file(tmp_path / "s.jsonl")
    path.write_text(path.read_text().replace('"kind": "insult", ', "").replace(
        '"kind": "neutral", ', ""))  # fmt: skip
    df = compute_metrics([path], CONFIG)
    assert not any(c.startswith("hit_rate_kind_") for c in df.columns)
    assert prompt_set_rows(df) == ([], [])
    assert "prompt-sets" not in build_html(df, title="t", scorer_description="s", run_info={})
