"""The Gemma 3 270M recipe (pipelines/configs/gemma3-270m.yaml): it compiles from its shipped
name and holds the XG experiment's settings (Li, Yong & Bach 2024, arXiv:2406.16235) scaled to
a 2-core CPU."""

from __future__ import annotations

import math

import pytest
import yaml

from xdetox.cli.main import main
from xdetox.config import load_config
from xdetox.files import read_jsonl
from xdetox.prompts import shipped_prompts

RECIPE = "gemma3-270m.yaml"


@pytest.fixture(scope="module")
def config():
    return load_config([RECIPE])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gemma3") / "detox.yaml"
    assert main(["compile", "--config", RECIPE, "-o", str(out)]) == 0
    return next(yaml.safe_load_all(out.read_text()))


def test_compiles_with_self_pairs_and_both_scorers(compiled):
    tasks = set(compiled["root"]["dag"]["tasks"])
    assert {"load-model", "self-pairs", "train", "merge", "prepare-prompts"} <= tasks
    assert "prepare-data" not in tasks  # the pairs come from the base model, not a data set
    assert any(t.startswith("scorer-agreement") for t in tasks)  # wordlist vs jigsaw
    params = compiled["root"]["inputDefinitions"]["parameters"]
    assert params["base_model"]["defaultValue"] == "gemma3-270m"
    assert params["prompts_source"]["defaultValue"] == "real"
    assert params["data"]["defaultValue"]["self_pairs"]["prompts"] == "real-train"


def test_english_only_dpo_with_lora(config):
    t = config.training
    assert (t.method, t.mode, t.beta) == ("dpo", "lora", 0.1)
    assert t.lora.r == 16
    # every attention and MLP projection, listed (what `auto` picks for Gemma 3)
    assert set(t.lora.target_modules) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    }  # fmt: skip
    assert t.per_device_train_batch_size <= 8 and t.num_train_epochs == 2
    assert t.save_steps % t.eval_steps == 0
    pairs = config.data.self_pairs
    assert config.data.preference == "self"
    assert (pairs.prompts, pairs.language, pairs.scorer) == ("real-train", "en", "jigsaw")


def test_eval_steps_fit_the_expected_pair_count(config):
    """At least three evaluations in the run, with the pairs the budget expects (~2/3 of the
    training prompts kept, as in the first Gemma run: 82 pairs of 120 prompts)."""
    prompts = len(read_jsonl(shipped_prompts(config.data.self_pairs.prompts)))
    pairs = prompts * 82 / 120 * (1 - config.data.eval_fraction)
    t = config.training
    steps = math.ceil(pairs / t.per_device_train_batch_size) * t.num_train_epochs
    assert steps / t.eval_steps >= 3


def test_evaluation_languages_scorers_and_metrics(config):
    assert config.model.base == "gemma3-270m"
    assert config.data.prompts == "real"
    assert sorted(config.data.languages) == ["de", "en", "es", "fr", "ru"]
    assert (config.scoring.scorer, config.scoring.agreement_with) == ("wordlist", "jigsaw")
    assert config.metrics.perplexity and config.metrics.perplexity_model is None  # the base's


def test_sampling_fits_the_cpu_budget(config):
    """The recipe's time budget: sampling ≤ 60 of the ~150 minutes on 2 cores, at the measured
    0.6 s per 20-token sample on one thread; evaluation runs two tasks at once, pairs one. Every
    model of the plan generates: base, the snapshots, the tuned model and the control."""
    from xdetox.pipelines.model_plan import evaluated_labels, model_plan

    g = config.generation
    assert config.data.max_prompts_per_language is None  # every evaluation prompt is used
    prompts = read_jsonl(shipped_prompts(config.data.prompts))
    eval_prompts = sum(r["language"] in config.data.languages for r in prompts)
    models = evaluated_labels(config, model_plan(config))
    assert models == ("base", "dpo_at33", "dpo_at67", "dpo", "control")
    eval_samples = eval_prompts * g.n * len(models)
    s = config.data.self_pairs
    pair_samples = len(read_jsonl(shipped_prompts(s.prompts))) * s.n
    assert g.max_new_tokens == s.max_new_tokens == 20
    assert config.cluster.parallelism == 2
    assert (eval_samples / 2 + pair_samples) * 0.6 / 60 <= 60  # minutes of sampling
