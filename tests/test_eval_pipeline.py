"""The eval pipeline: regression check against a baseline, compiled IR and a local toy run."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from xdetox.components.compare.baseline import compare_with_baseline, read_metrics_table
from xdetox.config import EvaluationConfig, load_config
from xdetox.errors import DataError
from xdetox.pipelines.compile import compile_pipeline


def _metrics(model: str, values: dict[str, float]) -> pd.DataFrame:
    rows = [{"model": model, "language": k, "avg_toxicity": v} for k, v in values.items()]
    return pd.DataFrame(rows)


def test_flags_only_rises_beyond_the_margin():
    current = _metrics("candidate", {"en": 0.10, "de": 0.30, "fr": 0.21, "ALL": 0.2})
    baseline = _metrics("dpo", {"en": 0.12, "de": 0.20, "fr": 0.20, "ALL": 0.17})
    result = compare_with_baseline(current, baseline, EvaluationConfig(margin=0.02))
    by_lang = result.table.set_index("language")
    assert by_lang.loc["de", "delta"] == pytest.approx(0.10)
    assert by_lang.loc["de", "status"] == "regressed"
    assert by_lang.loc["fr", "status"] == "ok"  # +0.01 is within the margin
    assert by_lang.loc["en", "status"] == "ok"  # toxicity fell
    assert by_lang.loc["ALL", "status"] == "ok"  # the mean is reported, never flagged
    assert result.regressed == ["de"]
    assert "de" in result.message and "+0.1000" in result.message


def test_languages_on_one_side_only_and_missing_values_are_never_flagged():
    current = _metrics("candidate", {"en": 0.5, "ja": 0.9, "de": math.nan})
    baseline = _metrics("base", {"en": 0.5, "ko": 0.1, "de": 0.0})
    table = compare_with_baseline(current, baseline, EvaluationConfig()).table
    status = dict(zip(table.language, table.status, strict=True))
    assert status == {
        "en": "ok",
        "ja": "no baseline",
        "de": "missing in run",
        "ko": "missing in run",
        "ALL": "no baseline",
    }


def test_baseline_with_several_models_needs_a_label():
    current = _metrics("candidate", {"en": 0.3})
    baseline = pd.concat([_metrics("base", {"en": 0.5}), _metrics("dpo", {"en": 0.1})])
    with pytest.raises(DataError, match="baseline_label"):
        compare_with_baseline(current, baseline, EvaluationConfig())
    result = compare_with_baseline(current, baseline, EvaluationConfig(baseline_label="dpo"))
    assert result.regressed == ["en"]
    with pytest.raises(DataError, match="no rows for model 'sft'"):
        compare_with_baseline(current, baseline, EvaluationConfig(baseline_label="sft"))


def test_reads_a_baseline_file_or_a_run_folder(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    _metrics("dpo", {"en": 0.1}).to_csv(run / "metrics.csv", index=False)
    assert read_metrics_table(run).avg_toxicity.tolist() == [0.1]
    assert read_metrics_table(run / "metrics.csv").model.tolist() == ["dpo"]
    (tmp_path / "bad.csv").write_text("language,avg_toxicity\nen,0.1\n")
    with pytest.raises(DataError, match=r"bad\.csv.*missing column\(s\) model"):
        read_metrics_table(tmp_path / "bad.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no metrics\.csv"):
        read_metrics_table(empty)


def test_eval_pipeline_ir(tmp_path: Path):
    out = compile_pipeline(load_config(), tmp_path / "eval.yaml", "eval")
    spec = yaml.safe_load(out.read_text())
    root = spec["root"]["dag"]["tasks"]
    assert {
        "load-model",
        "prepare-prompts",
        "for-loop-1",
        "report",
        "compare-with-baseline",
        "condition-2",
    } <= set(root)
    loop = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert set(loop) == {"evaluate-language"}
    per_language = spec["components"]["comp-evaluate-language"]["dag"]["tasks"]
    # one model: its score file goes straight to metrics and examples, nothing to gather
    assert set(per_language) == {"generate", "score", "language-metrics", "language-examples"}
    condition = root["condition-2"]["triggerPolicy"]["condition"]
    assert "compare-with-baseline" in condition and "true" in condition
    assert root["compare-with-baseline"]["cachingOptions"].get("enableCache") is not True
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["evaluation"]["defaultValue"]["margin"] == pytest.approx(0.02)
    assert params["model"]["defaultValue"] == "toy"


def test_detox_and_eval_share_the_per_language_sub_pipeline(tmp_path: Path):
    """One nested pipeline (pipelines/per_language.py): two models in detox, one in eval, and
    the second scorer's agreement in both."""
    overrides = ["scoring.agreement_with=offline", "scoring.scorer=classifier"]
    config = load_config(None, overrides)
    specs = {
        name: next(yaml.safe_load_all(
            compile_pipeline(config, tmp_path / f"{name}.yaml", name).read_text()
        ))
        for name in ("detox", "eval")
    }  # fmt: skip
    tasks = {
        name: set(spec["components"]["comp-evaluate-language"]["dag"]["tasks"])
        for name, spec in specs.items()
    }
    assert tasks["eval"] == {
        "generate", "score", "score-2", "language-metrics", "language-examples",
    }  # fmt: skip
    assert tasks["detox"] == {
        "generate", "generate-2", "score", "score-2", "score-3", "score-4", "gather-scores",
        "language-metrics", "language-examples",
    }  # fmt: skip
    assert "scorer-agreement" in specs["eval"]["root"]["dag"]["tasks"]
    outputs = specs["eval"]["components"]["comp-evaluate-language"]["outputDefinitions"]
    assert set(outputs["artifacts"]) == {
        "table", "examples", "evaluated_scores", "evaluated_second_scores",
    }  # fmt: skip


def _xdetox(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "xdetox"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=900)


@pytest.mark.e2e
def test_local_eval_run_flags_a_planted_regression(tmp_path: Path):
    langs = "data.languages=[en,de]"
    first = _xdetox("run", "--pipeline", "eval", "--set", langs, "--output", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr[-3000:]
    metrics = pd.read_csv(tmp_path / "a" / "metrics.csv")
    assert set(metrics.model) == {"candidate"}
    assert (tmp_path / "a" / "scores" / "candidate_de.jsonl").is_file()

    # Yesterday's baseline said German was much less toxic: today's run must be flagged.
    planted = metrics.copy()
    planted.loc[planted.language == "de", "avg_toxicity"] -= 0.1
    planted.to_csv(tmp_path / "baseline.csv", index=False)
    second = _xdetox(
        "run",
        "--pipeline",
        "eval",
        "--set",
        langs,
        "--set",
        f"evaluation.baseline={tmp_path / 'baseline.csv'}",
        "--output",
        str(tmp_path / "b"),
    )
    assert second.returncode == 2
    assert "regressed beyond the margin in: de +0.1000" in second.stderr
    assert "Traceback" not in second.stderr
    table = pd.read_csv(tmp_path / "b" / "comparison.csv").set_index("language")
    assert table.loc["de", "status"] == "regressed"
    assert table.loc["en", "status"] == "ok"
    assert "regressed" in (tmp_path / "b" / "comparison.html").read_text()
