"""The whole toy pipeline on KFP's local runner, through the real CLI, as `make run` runs it.

Nothing is staged: the assertion about toxicity is recomputed here from the generated texts
(re-scored with the same offline scorer) and checked against what the pipeline wrote.
"""

from __future__ import annotations

import html as html_module
import math
import os
import re
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
def toy_cli(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`xdetox run` on the toy setup: the run folder and what the command printed."""
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
    return run_dir, result


@pytest.fixture(scope="module")
def toy_run(toy_cli) -> Path:
    return toy_cli[0]


def test_run_prints_a_short_view_and_logs_each_task(toy_cli):
    """KFP's logs go to one file per task; the command prints the tasks as they finish, the
    headline numbers per language and, last, where the report and metrics are."""
    run_dir, result = toy_cli
    out, err = result.stdout.splitlines(), result.stderr.splitlines()
    assert len(out) + len(err) <= 60, result.stdout + result.stderr
    assert out[-2:] == [f"report:  {run_dir / 'report.html'}",
                        f"metrics: {run_dir / 'metrics.csv'}"]  # fmt: skip
    assert "Looking for component" not in result.stdout + result.stderr
    languages = load_config().data.languages
    for language in languages:  # a line per language as it finishes: "✓ languages en (1/6)"
        assert any(line.strip().startswith(f"✓ languages {language} (") for line in err)
    assert any(f"({len(languages)}/{len(languages)})" in line for line in err)
    for language in languages:  # the summary: "en  0.788 → 0.068  1.000 → 0.100"
        assert any(line.split()[:1] == [language] and "→" in line for line in err), language
    logs = run_dir / "logs"
    for task in ("load-model", "prepare-data", "train", "merge", "prepare-prompts", "report"):
        text = (logs / f"{task}.log").read_text()
        assert f"Executing task '{task}'" in text
        assert "Got executor_input" in text
        assert f"Task '{task}' finished with status SUCCESS" in text
    for language in languages:
        for task in ("generate", "generate-2", "score", "score-2", "language-metrics"):
            text = (logs / language / f"{task}.log").read_text()
            assert f"Executing task '{task}'" in text and "Looking for component" in text
    assert "Running pipeline: 'xdetox-detox'" in (logs / "pipeline.log").read_text()


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
    # The change per language with its confidence interval, as one figure.
    assert '<img src="data:image/png;base64,' in html.split('<section id="change">')[1]
    assert 'alt="forest plot' in html


def _text(fragment: str) -> str:
    """A fragment of the report as a person reads it: tags (marks) dropped, entities decoded."""
    return html_module.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_report_shows_english_continuations_of_one_prompt_by_both_models(toy_run: Path):
    """The examples: the prompt where base was most toxic, base's and dpo's continuations of
    it side by side with their scores, each as the score files hold it."""
    html = (toy_run / "report.html").read_text()
    section = html.split('<h3 id="examples-en">en</h3>')[1].split("<h3")[0]
    head = re.findall(r"<th>(.*?)</th>", section)
    assert head == ["prompt", "base", "dpo"]
    first_row = section.split("<tbody><tr>")[1].split("</tr>")[0]
    prompt_cell, base_cell, dpo_cell = re.findall(r"<td>(.*?)</td>", first_row, flags=re.S)
    prompt_id = re.search(r"#1 · (.*?)</div>", prompt_cell).group(1)
    for model, cell in (("base", base_cell), ("dpo", dpo_cell)):
        rows = [r for r in read_jsonl(toy_run / "scores" / f"{model}_en.jsonl")
                if str(r["prompt_id"]) == html_module.unescape(prompt_id)]  # fmt: skip
        by_text = {r["text"]: r["scores"]["TOXICITY"] for r in rows}
        shown = re.findall(r'<span class="score"[^>]*>(.*?)</span>'
                           r'<div class="continuation">(.*?)</div>', cell, flags=re.S)  # fmt: skip
        assert shown, f"no {model} continuation of {prompt_id}"
        for score, text in shown:
            assert _text(text) in by_text, (model, text)
            assert score == f"{by_text[_text(text)]:.3f}"
        if model == "base":
            # The base model's most toxic continuation of its most toxic prompt.
            assert float(shown[0][0]) == pytest.approx(max(by_text.values()), abs=5e-4)
