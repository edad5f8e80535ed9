"""The whole toy pipeline on KFP's local runner, through the real CLI, as `make run` runs it.

Nothing is staged: the assertion about toxicity is recomputed here from the generated texts
(re-scored with the same offline scorer) and checked against what the pipeline wrote.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from xdetox.components.score.scorers import get_scorer
from xdetox.config import load_config
from xdetox.files import read_jsonl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("e2e") / "run"
    exe = Path(sys.executable).parent / "xdetox"
    env = dict(os.environ)
    result = subprocess.run(
        [str(exe), "run", "--output", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"report:  {run_dir / 'report.html'}" in result.stdout
    return run_dir


def test_run_folder_holds_everything(toy_run: Path):
    languages = load_config().data.languages
    for name in ("report.html", "metrics.csv"):
        assert (toy_run / name).is_file()
    for model in ("base", "dpo"):
        assert (toy_run / "models" / model / "config.json").is_file()
        for lang in languages:
            assert (toy_run / "generations" / f"{model}_{lang}.jsonl").is_file()
            assert (toy_run / "scores" / f"{model}_{lang}.jsonl").is_file()
    assert (toy_run / "models" / "dpo-adapter" / "adapter_config.json").is_file()


def _avg_toxicity_by_model(scores_dir: Path, language: str) -> dict[str, float]:
    """Re-score the generated texts with the offline scorer and average TOXICITY per model."""
    scorer = get_scorer(load_config().scoring)
    sums: dict[str, list[float]] = defaultdict(list)
    for model in ("base", "dpo"):
        rows = read_jsonl(scores_dir / f"{model}_{language}.jsonl")
        fresh = scorer.score_batch([r["text"] for r in rows], [r["language"] for r in rows])
        for row, again in zip(rows, fresh, strict=True):
            assert row["scores"]["TOXICITY"] == pytest.approx(again["TOXICITY"])
            if again["TOXICITY"] is not None:
                sums[model].append(again["TOXICITY"])
    return {model: sum(v) / len(v) for model, v in sums.items()}


def test_dpo_lowers_english_toxicity(toy_run: Path):
    avg = _avg_toxicity_by_model(toy_run / "scores", "en")
    assert avg["base"] > 0.05, "the toy base model should be measurably toxic"
    assert avg["dpo"] < avg["base"], avg


def test_metrics_csv_matches_the_scores(toy_run: Path):
    df = pd.read_csv(toy_run / "metrics.csv")
    required = {"model", "language", "n_prompts", "n_samples", "n_missing",
                "expected_max_toxicity", "toxicity_probability", "avg_toxicity",
                "perplexity", "dist_1", "dist_2", "dist_3"}  # fmt: skip
    assert required <= set(df.columns)
    config = load_config()
    for model in ("base", "dpo"):
        row = df[(df.model == model) & (df.language == "en")].iloc[0]
        rows = read_jsonl(toy_run / "scores" / f"{model}_en.jsonl")
        tox = [r["scores"]["TOXICITY"] for r in rows]
        assert row.n_samples == len(rows)
        assert row.n_prompts == len({r["prompt_id"] for r in rows})
        assert row.n_samples == row.n_prompts * config.generation.n
        scored = [t for t in tox if t is not None]
        assert row.avg_toxicity == pytest.approx(sum(scored) / len(scored))
        assert math.isfinite(row.perplexity) and row.perplexity > 1


def test_report_shows_table_plot_and_scorer(toy_run: Path):
    html = (toy_run / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert get_scorer(load_config().scoring).name.split(" ")[0] in html
    assert "expected" in html.lower()
