"""The training stage: dispatch on ``training.method``, the multi-GPU launch command (built, not
run), the ``xdetox.components.train.run`` entry point, curves and metrics, the KFP component, the
commands, and the config sections' round trip through KFP parameters.

No ``from __future__ import annotations`` here: KFP reads the real annotations of the pipeline
function defined in a test.
"""

import base64
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from kfp import compiler, dsl
from tiny_models import gpt2_word_tokenizer, save_tiny_lm

from xdetox.cli.main import build_parser, main
from xdetox.components.train import dispatch, launch
from xdetox.components.train.curves import (
    curves_html,
    final_values,
    plot_png,
    stage_metrics,
    write_curves,
)
from xdetox.components.train.run import read_run_config
from xdetox.config import RLConfig, ScoringConfig, TrainingConfig, load_config, to_params
from xdetox.config.loader import validate_section
from xdetox.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
WORDS = ["the", "cat", "sat", "on", "mat", "nice", "kind", "rude", "bad", "words"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A tiny GPT-2, prepared pairs and a prompts file."""
    root = tmp_path_factory.mktemp("train")
    save_tiny_lm(root / "base", gpt2_word_tokenizer(WORDS), layers=1, hidden=16)
    (root / "pairs").mkdir()
    row = {"prompt": "the cat sat", "chosen": " nice kind words", "rejected": " rude bad words"}
    (root / "pairs" / "train.jsonl").write_text((json.dumps(row) + "\n") * 8)
    (root / "prompts.jsonl").write_text(
        "".join(json.dumps({"prompt": p, "language": "en"}) + "\n" for p in
                ["the cat sat on", "the mat", "nice cat", "the bad cat"])
    )  # fmt: skip
    return {"base": root / "base", "pairs": root / "pairs", "prompts": root / "prompts.jsonl"}


def _dpo(**kwargs) -> TrainingConfig:
    data = {"learning_rate": 1e-3, "warmup_steps": 0, "optim": "adamw_torch", "max_steps": 3,
            "save_steps": 2, "logging_steps": 1, "early_stopping_patience": 0,
            "gradient_checkpointing": False, "max_prompt_length": 8, "max_length": 32,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}  # fmt: skip
    data.update(kwargs)
    return TrainingConfig.model_validate(data)


# -- dispatch -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("dpo", "xdetox.components.train.dpo.train_dpo.train_dpo"),
        ("sft_dpo", "xdetox.components.train.sft.sft_then_dpo.train_sft_then_dpo"),
        ("ppo", "xdetox.components.train.ppo.ppo_trainer.train_ppo"),
        ("rloo", "xdetox.components.train.ppo.trl_online.train_online"),
        ("grpo", "xdetox.components.train.ppo.trl_online.train_online"),
    ],
)
def test_each_method_reaches_its_trainer(method, target, monkeypatch, tmp_path):
    calls = []
    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(
        sys.modules.get(module) or __import__(module, fromlist=[name]),
        name,
        lambda *args, **kwargs: calls.append((args, kwargs)) or {"steps": 1.0},
    )
    reward = [lambda prompts, completions, **kw: [0.0] * len(completions)]
    training = TrainingConfig(method=method)
    summary = dispatch.run_training(
        "m", tmp_path / "o", training, RLConfig(), pairs_dir="p", prompts_path="q",
        reward_funcs=reward, resume=False, progress=False,
    )  # fmt: skip
    assert summary == {"steps": 1.0} and len(calls) == 1
    args, kwargs = calls[0]
    assert args[0] == "m" and args[1] == ("q" if method in ("ppo", "rloo", "grpo") else "p")
    assert kwargs["resume"] is False
    if method in ("ppo", "rloo", "grpo"):
        assert kwargs["training"] is training  # mode, LoRA and seed come from training


def test_missing_input_names_what_the_method_trains_on(tmp_path):
    with pytest.raises(ConfigError, match=r"training\.method=dpo trains on preference pairs"):
        dispatch.run_training("m", tmp_path, TrainingConfig(method="dpo"), prompts_path="q")
    with pytest.raises(ConfigError, match=r"training\.method=rloo trains on prompts"):
        dispatch.run_training("m", tmp_path, TrainingConfig(method="rloo"), pairs_dir="p")


# -- several GPUs: the command, not the launch --------------------------------------------------


def test_several_gpus_launch_the_run_module_with_accelerate(world, tmp_path, monkeypatch):
    seen = {}

    def fake_run(command, env, check):
        seen["command"] = command
        config_file = Path(command[command.index("--config") + 1])
        seen["config"] = read_run_config(config_file)
        out = Path(command[command.index("--output-dir") + 1])
        out.mkdir(parents=True)
        (out / "train_summary.json").write_text(json.dumps({"steps": 7.0}))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(launch.subprocess, "run", fake_run)
    monkeypatch.setattr(launch.shutil, "which", lambda name: "/usr/bin/accelerate")
    training = _dpo(method="rloo", mode="lora")
    rl = RLConfig(max_steps=9)
    summary = launch.train_stage(
        world["base"], tmp_path / "out", training, rl, prompts_path=world["prompts"],
        scoring=ScoringConfig(), checkpoint_dir=tmp_path / "ckpt", resume=False, num_gpus=4,
        zero_stage=3,
    )  # fmt: skip
    assert summary == {"steps": 7.0}
    command = seen["command"]
    assert command[:2] == ["accelerate", "launch"]
    args = launch_command_parser().parse_args(command[2:])
    _validate_launch_command(args)
    assert args.num_processes == 4 and args.use_deepspeed and args.zero_stage == 3
    assert args.module and args.training_script == "xdetox.components.train.run"
    script = args.training_script_args
    assert script[script.index("--model-dir") + 1] == str(world["base"])
    assert script[script.index("--prompts") + 1] == str(world["prompts"])
    assert script[script.index("--checkpoint-dir") + 1] == str(tmp_path / "ckpt")
    assert "--no-resume" in script and "--pairs" not in script
    # The launched processes see exactly the sections the stage was given.
    assert seen["config"] == (training, rl, ScoringConfig())


def test_one_gpu_cpu_and_ppo_run_in_process(monkeypatch, caplog):
    assert launch.processes_for("dpo", 0) == 1 and launch.processes_for("dpo", 1) == 1
    assert launch.processes_for("grpo", 8) == 8
    with caplog.at_level(logging.WARNING):
        assert launch.processes_for("ppo", 8) == 1
    assert "compact PPO trainer uses one GPU" in caplog.text
    # Without an `accelerate` console script the launcher runs as a module of this Python.
    monkeypatch.setattr(launch.shutil, "which", lambda name: None)
    command = launch.launch_command(2, 2, config_file="c.json", model_dir="m", output_dir="o",
                                    pairs_dir="p")  # fmt: skip
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "2"


def test_failed_launch_is_one_error(world, tmp_path, monkeypatch):
    def failing(command, env, check):
        return subprocess.CompletedProcess(command, 3)

    monkeypatch.setattr(launch.subprocess, "run", failing)
    with pytest.raises(Exception, match=r"accelerate launch \(2 processes\) failed .* code 3"):
        launch.train_stage(world["base"], tmp_path / "o", _dpo(), pairs_dir=world["pairs"],
                           num_gpus=2)  # fmt: skip


@pytest.mark.e2e
def test_run_module_trains_in_a_subprocess(world, tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"training": _dpo().model_dump(mode="json")}))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "xdetox.components.train.run", "--config", str(config),
         "--model-dir",
         str(world["base"]), "--output-dir", str(out), "--pairs", str(world["pairs"]),
         "--no-progress"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # DeepSpeed may print a line of its own first; the summary is the JSON object at the end.
    assert json.loads(result.stdout[result.stdout.index("{\n") :])["steps"] == 3.0
    assert (out / "adapter_model.safetensors").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"training": {"method": "dpo", "betta": 1}}))
    result = subprocess.run(
        [sys.executable, "-m", "xdetox.components.train.run", "--config", str(bad),
         "--model-dir", "m",
         "--output-dir", str(tmp_path / "o2"), "--pairs", "p"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert re.search(r"bad\.json: training: betta: unknown key", result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1


# -- curves and metrics -------------------------------------------------------------------------

DPO_LOG = [
    {"loss": 0.69, "rewards/margins": 0.0, "rewards/accuracies": 0.0, "step": 1},
    {"loss": 0.5, "rewards/margins": 0.4, "rewards/accuracies": 0.75, "step": 2},
    {"eval_loss": 0.55, "eval_rewards/margins": 0.3, "step": 2},
    {"loss": 0.3, "rewards/margins": float("nan"), "rewards/accuracies": 1.0, "step": 3},
    {"train_loss": 0.5, "step": 3},
]


def test_final_values_are_the_last_finite_logged_ones():
    finals = final_values("dpo", {"dpo": DPO_LOG})
    assert finals == {
        "final_loss": 0.3,
        "final_eval_loss": 0.55,
        "final_rewards_margins": 0.4,  # step 3's NaN is not a value
        "final_eval_rewards_margins": 0.3,
        "final_rewards_accuracies": 1.0,
    }  # no eval accuracy was logged: absent, not 0
    ppo = [{"step": 1, "reward_mean": 1.0, "kl": 0.5, "value_loss": 2.0},
           {"step": 2, "reward_mean": None, "kl": None}]  # fmt: skip
    assert final_values("ppo", {"ppo": ppo}) == {
        "final_reward_mean": 1.0, "final_kl": 0.5, "final_value_loss": 2.0,
    }  # fmt: skip
    two = final_values("sft_dpo", {"sft": [{"loss": 2.0, "step": 1}], "dpo": DPO_LOG[:1]})
    assert two["final_sft_loss"] == 2.0 and two["final_loss"] == 0.69


def test_metrics_keep_one_key_per_quantity():
    summary = {"steps": 3, "final_reward_margin": 0.4, "ok": True, "note": "x", "n": 1.0}
    finals = {"final_rewards_margins": 0.4, "final_loss": 0.3, "final_rewards_accuracies": 1.0}
    assert stage_metrics(summary, finals) == {
        "steps": 3.0, "n": 1.0, "final_reward_margin": 0.4, "final_loss": 0.3,
        "final_rewards_accuracies": 1.0,
    }  # fmt: skip


def test_curves_page_embeds_the_figure(tmp_path):
    png = plot_png("dpo", {"dpo": DPO_LOG}, "title")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    page = curves_html(png, "DPO <run>", {"final_loss": 0.3}, {"steps": 3.0})
    assert "DPO &lt;run&gt;" in page and "final_loss" in page
    embedded = re.search(r"base64,([A-Za-z0-9+/=]+)", page).group(1)
    assert base64.b64decode(embedded) == png
    (tmp_path / "training_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in DPO_LOG))
    finals = write_curves(tmp_path, "dpo", tmp_path / "curves.html")
    assert finals["final_loss"] == 0.3 and (tmp_path / "curves.html").is_file()


# -- the KFP component --------------------------------------------------------------------------


def test_component_trains_logs_metrics_and_curves(world, tmp_path):
    from xdetox.components.train.component import train

    tuned = dsl.Model(uri=str(tmp_path / "tuned"))
    metrics = dsl.Metrics(uri=str(tmp_path / "metrics"))
    curves = dsl.HTML(uri=str(tmp_path / "curves.html"))
    struct = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
              for k, v in to_params(_dpo()).items()}  # fmt: skip
    snapshots = dsl.Model(uri=str(tmp_path / "snapshots"))
    train.python_func(
        base_model=dsl.Model(uri=str(world["base"])), training=struct, rl={}, tuned=tuned,
        metrics=metrics, curves=curves, snapshots=snapshots,
        pairs=dsl.Dataset(uri=str(world["pairs"])), num_gpus=-1,
    )  # fmt: skip
    assert (tmp_path / "tuned" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "tuned.checkpoints").exists()
    assert metrics.metadata["steps"] == 3.0 and "final_reward_margin" in metrics.metadata
    assert "final_eval_loss" not in metrics.metadata  # no eval pairs: absent, not 0
    assert all(isinstance(v, float) for v in metrics.metadata.values())
    assert "data:image/png;base64," in (tmp_path / "curves.html").read_text()
    assert tuned.metadata == {"method": "dpo", "mode": "lora", "model": "dpo",
                              "xdetox_kind": "trained"}  # fmt: skip
    # No snapshots asked for: the artifact still holds its (empty) index.
    assert snapshots.metadata == {"xdetox_kind": "snapshots", "snapshots": []}
    assert (tmp_path / "snapshots" / "snapshots.json").read_text().strip().startswith("{")


def test_component_reads_rl_prompts_when_no_prompts_artifact(world, tmp_path, monkeypatch):
    from xdetox.components.train import component as component_module

    seen = {}

    def fake_stage(model, output, training, rl, **kwargs):
        seen.update(kwargs, method=training.method)
        Path(output).mkdir(parents=True)
        (Path(output) / "training_log.jsonl").write_text('{"step": 1, "reward_mean": 1.0}\n')
        return {"steps": 1.0}

    monkeypatch.setattr(launch, "train_stage", fake_stage)
    component_module.train.python_func(
        base_model=dsl.Model(uri=str(world["base"])), training={"method": "ppo"},
        rl={"prompts": str(world["prompts"])}, tuned=dsl.Model(uri=str(tmp_path / "t")),
        metrics=dsl.Metrics(uri=str(tmp_path / "m")), curves=dsl.HTML(uri=str(tmp_path / "c")),
        snapshots=dsl.Model(uri=str(tmp_path / "s")), method="rloo", label="rloo_b",
    )  # fmt: skip
    # The task's method wins over training.method; the label names the model.
    assert seen["prompts_path"] == world["prompts"] and seen["pairs_dir"] is None
    assert seen["method"] == "rloo" and seen["snapshot_dir"] is None
    assert seen["checkpoint_dir"] == str(tmp_path / "t") + ".checkpoints"
    assert seen["num_gpus"] is None  # -1: every visible GPU


def test_component_compiles_with_optional_inputs(tmp_path):
    from xdetox.components.load_model.component import load_model
    from xdetox.components.train.component import train

    @dsl.pipeline(name="train-only")
    def pipeline(training: dict = {"method": "ppo"}, rl: dict = {}):  # noqa: B006
        base = load_model(source="toy")
        train(base_model=base.outputs["model"], training=training, rl=rl)

    compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    text = (tmp_path / "p.yaml").read_text()
    assert "comp-train" in text and "isOptional: true" in text


# -- commands -----------------------------------------------------------------------------------

COMMANDS = ["train", "sft", "ppo", "rloo", "grpo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_training_commands_take_config_set_model_data_output(command, capsys):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    options = {o for a in sub._actions for o in a.option_strings}
    assert {"--config", "--set", "--model", "--output", "--no-resume", "--num-gpus"} <= options
    assert ("--data" in options) == (command in ("train", "sft"))
    assert ("--prompts" in options) == (command != "sft")
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0 and f"usage: xdetox {command}" in capsys.readouterr().out


def test_ppo_command_runs_and_writes_curves(world, tmp_path, capsys):
    out = tmp_path / "ppo"
    code = main([
        "ppo", "--model", str(world["base"]), "--prompts", str(world["prompts"]),
        "--output", str(out), "--set", "rl.max_steps=2", "--set", "rl.reward.kind=scorer",
        "--set", "rl.ppo.batch_size=4", "--set", "rl.query_min_tokens=2",
        "--set", "rl.query_max_tokens=3", "--set", "rl.min_new_tokens=3",
        "--set", "rl.max_new_tokens=4", "--set", "training.lora.r=4",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert '"steps": 2.0' in printed and "final_reward_mean" in printed
    assert (out / "training_curves.html").is_file() and (out / "value_head.safetensors").is_file()


def test_train_command_errors_are_one_line(world, tmp_path, capsys):
    code = main([
        "train", "--model", str(world["base"]), "--output", str(tmp_path / "o"),
        "--set", "training.method=rloo", "--set", "rl.prompts=/nowhere.jsonl",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "/nowhere.jsonl: no such file or folder" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


# -- config -------------------------------------------------------------------------------------


def _as_struct(value):
    """What a KFP Struct parameter gives back: every number a float, at every depth."""
    if isinstance(value, dict):
        return {k: _as_struct(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_struct(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def test_training_and_rl_survive_kfp_struct_parameters(recipe_paths):
    every_optional = load_config(None, [
        "training.sft.data=gs://b/sft.jsonl", "training.bf16=true", "training.mode=qlora",
        "rl.prompt_toxicity_above=0.3", "rl.online.loss_type=dapo", "rl.ppo.max_grad_norm=1.0",
        "training.lora.target_modules=[c_attn]",
    ])  # fmt: skip
    configs = [load_config([p]) for p in recipe_paths] + [every_optional]
    for config in configs:
        for name, model in (("training", TrainingConfig), ("rl", RLConfig)):
            section = getattr(config, name)
            again = validate_section(model, _as_struct(to_params(section)), name)
            assert again == section, f"{config.name}: {name} changed through to_params"


def test_recipes_hold_the_stated_hyperparameters():
    card = load_config([REPO / "pipelines/configs/card-sft-dpo-qlora.yaml"]).training
    assert (card.method, card.mode, card.beta, card.learning_rate) == (
        "sft_dpo",
        "qlora",
        0.1,
        2e-4,
    )
    assert (card.per_device_train_batch_size, card.num_train_epochs) == (4, 10)
    assert (card.max_length, card.max_prompt_length) == (2048, 1024)
    assert (card.qlora.quant_type, card.qlora.double_quant, card.qlora.compute_dtype) == (
        "nf4", True, "bfloat16",
    )  # fmt: skip
    ppo = load_config([REPO / "pipelines/configs/trl-detox-ppo.yaml"])
    assert ppo.training.method == "ppo" and ppo.rl.prompt_toxicity_above == 0.3
    rl = ppo.rl
    assert (rl.query_min_tokens, rl.query_max_tokens, rl.min_new_tokens, rl.max_new_tokens) == (
        10, 15, 20, 29,
    )  # fmt: skip
    assert (rl.top_k, rl.top_p, rl.reward.label_index) == (0, 1.0, 0)
    p = rl.ppo
    assert (p.learning_rate, p.batch_size, p.mini_batch_size) == (2.94e-5, 16, 4)
    assert (p.init_kl_coef, p.target_kl, p.kl_horizon, p.cliprange, p.cliprange_value) == (
        0.2, 6.0, 10000, 0.2, 0.2,
    )  # fmt: skip
    assert (p.vf_coef, p.gamma, p.lam) == (0.1, 1.0, 0.95)
