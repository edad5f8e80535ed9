"""Every model a recipe produces, end to end on the toy setup through the real CLI and KFP's
local runner: sft_dpo's SFT stage, a control arm and a snapshot part-way through training in one
run; DPO and PPO from the same base in another. Each evaluated beside the base in metrics.csv
and the report."""

from __future__ import annotations

import html as html_module
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.e2e

LANGUAGES = ["en", "de", "ru"]


def run_cli(run_dir: Path, *args: str) -> Path:
    exe = Path(sys.executable).parent / "xdetox"
    languages = "[" + ", ".join(LANGUAGES) + "]"
    command = [str(exe), "run", "--output", str(run_dir), "--set", f"data.languages={languages}"]
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return run_dir


@pytest.fixture(scope="module")
def stages_run(tmp_path_factory) -> Path:
    return run_cli(
        tmp_path_factory.mktemp("stages") / "run",
        "--set", "training.method=sft_dpo",
        "--set", "training.control=swapped",
        "--set", "training.dose_response=[0.5]",
    )  # fmt: skip


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory) -> Path:
    return run_cli(
        tmp_path_factory.mktemp("methods") / "run",
        "--config", "toy.yaml", "--config", "toy-methods.yaml",
    )  # fmt: skip


def metrics(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv", keep_default_na=False, na_values=[""])


def text_of(page: str) -> str:
    return html_module.unescape(re.sub(r"<[^>]+>", " ", page))


def test_sft_dpo_rows_for_every_stage_the_control_and_the_snapshot(stages_run):
    df = metrics(stages_run)
    order = ["base", "sft", "sft_dpo_at50", "sft_dpo", "control"]
    assert list(df["model"].drop_duplicates()) == order
    for model in order:
        assert sorted(df.loc[df["model"] == model, "language"]) == sorted([*LANGUAGES, "ALL"])
    rows = df.set_index(["model", "language"])
    assert rows.loc[("sft_dpo", "en"), "compared_with"] == "sft"
    assert rows.loc[("control", "en"), "compared_with"] == "sft_dpo"
    # The DPO stage's own change is paired: with every prompt paired it is the rows' difference.
    own = rows.loc[("sft_dpo", "en"), "vs_delta_expected_max_toxicity"]
    difference = (
        rows.loc[("sft_dpo", "en"), "expected_max_toxicity"]
        - rows.loc[("sft", "en"), "expected_max_toxicity"]
    )
    assert own == pytest.approx(difference)
    # The tuned model detoxified English; the control, trained to prefer the toxic answers, did
    # not get less toxic than the tuned model.
    assert rows.loc[("sft_dpo", "en"), "delta_expected_max_toxicity_ci_high"] < 0
    assert rows.loc[("control", "en"), "vs_delta_expected_max_toxicity_ci_low"] > 0
    # The fluency cost sits beside the toxicity change: a number, not a missing value.
    assert not pd.isna(rows.loc[("sft_dpo", "en"), "delta_nll_mean"])
    for label in ("sft", "sft_dpo", "sft_dpo_at50", "control"):
        assert (stages_run / "models" / label / "config.json").is_file()
    assert (stages_run / "pairs-control" / "train.jsonl").is_file()


def test_report_shows_the_card_table_the_control_and_the_dose_response(stages_run):
    page = (stages_run / "report.html").read_text(encoding="utf-8")
    text = text_of(page)
    for header in ("Δ base → sft", "Δ sft → sft_dpo", "sft_dpo − sft", "control − sft_dpo"):
        assert header in text
    assert "Tuned vs control." in text
    verdict = re.search(r"en: sft_dpo is less toxic than its control", text)
    assert verdict, "English: the tuned model beat its control"
    assert '<section id="dose-response">' in page
    assert 'alt="dose-response' in page


def test_dpo_and_ppo_from_one_base_are_compared_in_one_report(methods_run):
    df = metrics(methods_run)
    assert list(df["model"].drop_duplicates()) == ["base", "dpo", "ppo"]
    rows = df.set_index(["model", "language"])
    for model in ("dpo", "ppo"):
        for language in LANGUAGES:
            assert rows.loc[(model, language), "n_samples"] == rows.loc[("base", language),
                                                                       "n_samples"]  # fmt: skip
            assert not pd.isna(rows.loc[(model, language), "delta_expected_max_toxicity_ci_low"])
    text = text_of((methods_run / "report.html").read_text(encoding="utf-8"))
    assert "dpo − base" in text and "ppo − base" in text
    for label in ("dpo", "ppo"):
        assert (methods_run / "models" / label / "config.json").is_file()
