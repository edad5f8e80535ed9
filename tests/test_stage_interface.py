"""One typed interface per stage: the config section documents the KFP component, makes the
command's flags and reaches TRL's config classes by name.

No ``from __future__ import annotations``: KFP and the decorator read real annotations.
"""

import argparse
import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path
from typing import Literal

import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl.python_component import PythonComponent
from pydantic import Field

import xdetox.components as components_package
from xdetox.cli import stage_commands, training_commands
from xdetox.cli.main import build_parser, main
from xdetox.components.train.dpo.dpo_arguments import build_dpo_config
from xdetox.components.train.ppo.trl_online import build_online_args
from xdetox.components.train.sft.train_sft import build_sft_config
from xdetox.config import (
    Config,
    GenerationConfig,
    RLConfig,
    TrainingConfig,
    load_config,
    to_params,
    validate_section,
)
from xdetox.config.base import _Strict
from xdetox.config.fields import submodel
from xdetox.config.interface import add_section_flags, documented, flag_overrides
from xdetox.errors import ConfigError

# -- component docs -----------------------------------------------------------------------------


def _components() -> dict[str, PythonComponent]:
    found = {}
    for info in pkgutil.iter_modules(components_package.__path__):
        try:
            module = importlib.import_module(f"xdetox.components.{info.name}.component")
        except ModuleNotFoundError:
            continue
        for name, value in vars(module).items():
            if isinstance(value, PythonComponent):
                found[name] = value
    return found


COMPONENTS = _components()


def _compiled(component: PythonComponent, tmp_path: Path) -> dict:
    path = tmp_path / "component.yaml"
    compiler.Compiler().compile(component, str(path))
    spec = yaml.safe_load(path.read_text())
    return spec


def test_every_component_is_found():
    assert {"generate", "score", "train", "report", "train_probe", "fail_run"} <= set(COMPONENTS)
    assert len(COMPONENTS) >= 19


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_compiled_spec_documents_every_input_and_output(name, tmp_path):
    spec = _compiled(COMPONENTS[name], tmp_path)
    (component,) = spec["components"].values()
    documented_names = []
    for side in ("inputDefinitions", "outputDefinitions"):
        for kind in ("parameters", "artifacts"):
            for key, entry in component.get(side, {}).get(kind, {}).items():
                assert entry.get("description"), f"{name}: {side}.{kind}.{key} has no description"
                documented_names.append(key)
    assert documented_names, name


def test_section_parameter_lists_the_sections_keys(tmp_path):
    spec = _compiled(COMPONENTS["generate"], tmp_path)
    (component,) = spec["components"].values()
    text = component["inputDefinitions"]["parameters"]["generation"]["description"]
    assert "``generation`` config section (GenerationConfig)" in text
    assert "- n (int, default 25): samples per prompt" in text
    assert "- backend (auto | vllm | hf, default auto)" in text
    assert "- vllm.dtype (str, default auto)" in text  # nested sections as dotted keys
    for key in GenerationConfig.model_fields:
        assert f"- {key} (" in text or f"- {key}." in text
    train = _compiled(COMPONENTS["train"], tmp_path)["components"]["comp-train"]
    rl = train["inputDefinitions"]["parameters"]["rl"]["description"]
    assert "``rl`` config section" in rl and "Read by ppo, rloo and grpo." in rl
    assert "- online.trl (dict[str, any], default {})" in rl
    artifact = component["inputDefinitions"]["artifacts"]["model"]["description"]
    assert artifact == "the Hugging Face model folder sampled from"


def test_decorator_line_stays_out_of_the_container_and_the_function_runs(tmp_path):
    """KFP ships the function's source from its ``def`` line; executed alone it still works."""
    spec = _compiled(COMPONENTS["fail_run"], tmp_path)
    container = spec["deploymentSpec"]["executors"]["exec-fail-run"]["container"]
    source = container["command"][-1]
    assert "def fail_run(" in source and "@documented" not in source and "Args:" not in source
    namespace: dict = {}
    exec(compile(source, "ephemeral_component.py", "exec"), namespace)  # as the executor does
    table = tmp_path / "comparison.csv"
    table.write_text("language,status,delta\nen,regressed,0.1\nde,ok,0.0\n")
    with pytest.raises(RuntimeError, match=r"regressed beyond the margin in: en \+0\.1000"):
        namespace["fail_run"](comparison=dsl.Dataset(uri=str(table)))
    # The decorated function is the original one, with the Args block in its docstring.
    assert "Args:" in COMPONENTS["fail_run"].python_func.__doc__


def test_documented_refuses_a_missing_or_unknown_parameter():
    def stage(source: str, generation: dict):
        """A stage."""

    with pytest.raises(TypeError, match=r"undocumented \['generation'\]"):
        documented(source="where from")(stage)
    with pytest.raises(TypeError, match=r"unknown \['sorce'\]"):
        documented(sorce="x", source="x", generation=GenerationConfig)(stage)
    doc = documented(source="where from", generation=GenerationConfig)(stage).__doc__
    assert doc.startswith("A stage.\n\nArgs:\n    source: where from\n    generation: The")


# -- command-line flags -------------------------------------------------------------------------


class ToySection(_Strict):
    alpha: int = Field(1, gt=0, description="how much alpha, in %")
    mode: Literal["fast", "slow"] = Field("fast", description="the pace")
    enabled: bool = Field(False, description="switch it on")
    ratio: float | None = Field(None, description="a ratio")
    names: list[str] = Field(default_factory=list, description="a list stays --set only")


def test_flags_are_derived_from_the_section_fields():
    parser = argparse.ArgumentParser()
    added = add_section_flags(parser, ToySection, "toy", rename={"ratio": "--share"})
    assert added == ["--alpha", "--mode", "--enabled", "--share"]
    assert "how much alpha, in % [toy.alpha]" in parser.format_help()
    args = parser.parse_args(["--alpha", "3", "--no-enabled", "--mode", "slow", "--share", "0.5"])
    assert flag_overrides(args) == {
        "toy.alpha": 3, "toy.enabled": False, "toy.mode": "slow", "toy.ratio": 0.5,
    }  # fmt: skip
    assert flag_overrides(parser.parse_args([])) == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "medium"])  # Literal → choices


def test_a_new_section_field_becomes_a_flag():
    class Extended(GenerationConfig):
        beam_width: int = Field(4, gt=0, description="beams kept")

    parser = argparse.ArgumentParser()
    added = add_section_flags(parser, Extended, "generation")
    assert "--beam-width" in added and "--top-p" in added
    args = parser.parse_args(["--beam-width", "8"])
    assert flag_overrides(args) == {"generation.beam_width": 8}


def test_flag_errors_are_caught_when_the_parser_is_built():
    with pytest.raises(ValueError, match="no field"):
        add_section_flags(argparse.ArgumentParser(), ToySection, "toy", exclude=("alpah",))
    with pytest.raises(ValueError, match="not a section of the config"):
        add_section_flags(argparse.ArgumentParser(), ToySection)


def _subparser(command: str) -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices[command]


def test_generate_has_a_flag_for_every_scalar_generation_key_and_they_win():
    options = {o for a in _subparser("generate")._actions for o in a.option_strings}
    kept = {"--n", "--temperature", "--top-p", "--max-tokens", "--seed", "--protocol", "--backend"}
    assert kept | {"--batch-size", "--shard-size"} <= options
    args = build_parser().parse_args([
        "generate", "--model", "m", "--prompts", "p", "--output", "o", "--top-p", "0.5",
        "--max-tokens", "7", "--set", "generation.top_p=0.3", "--set", "generation.n=3",
    ])  # fmt: skip
    config = stage_commands._config(args)
    assert config.generation.top_p == 0.5  # the flag beats --set and the recipe
    assert config.generation.max_new_tokens == 7 and config.generation.n == 3


def test_training_flags_reach_the_config():
    args = build_parser().parse_args([
        "train", "--model", "toy", "--output", "o", "--beta", "0.3", "--no-gradient-checkpointing",
        "--method", "sft_dpo",
    ])  # fmt: skip
    training = training_commands._config(args).training
    assert (training.beta, training.gradient_checkpointing) == (0.3, False)
    assert training.method == "sft_dpo"
    args = build_parser().parse_args([
        "grpo", "--model", "toy", "--output", "o", "--num-generations", "2", "--max-steps", "9",
    ])  # fmt: skip
    config = training_commands._config(args)
    assert (config.rl.online.num_generations, config.rl.max_steps) == (2, 9)
    assert config.training.method == "grpo"


def test_bad_flag_value_is_one_line_naming_the_key(tmp_path, capsys):
    out = tmp_path / "g.jsonl"
    code = main(["generate", "--model", "toy", "--prompts", "toy", "--output", str(out),
                 "--n", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "generation.n" in err
    assert not out.exists()


def test_every_config_key_has_a_description():
    todo = [(Config, "")]
    while todo:
        model, prefix = todo.pop()
        for name, info in model.model_fields.items():
            nested = submodel(info.annotation)
            if nested is not None:
                todo.append((nested, f"{prefix}{name}."))
            else:
                assert info.description, f"{prefix}{name} has no description"


# -- TRL pass-through ---------------------------------------------------------------------------


def test_every_training_key_trl_also_has_reaches_dpo_config(tmp_path):
    from trl import DPOConfig

    config = TrainingConfig(
        beta=0.25, learning_rate=3e-5, warmup_steps=7, max_grad_norm=2.0, max_steps=11,
        max_length=128, eval_steps=5, save_steps=10, logging_steps=3, seed=4,
        gradient_checkpointing=False, precompute_ref_log_probs=True, optim="adamw_torch",
    )  # fmt: skip
    args = build_dpo_config(config, tmp_path, has_eval=True, progress=False)
    shared = {f.name for f in dataclasses.fields(DPOConfig)} & set(TrainingConfig.model_fields)
    assert {"beta", "max_length", "seed", "precompute_ref_log_probs"} <= shared
    for name in shared - {"bf16"}:  # bf16: None means "decide from the mode and the machine"
        assert getattr(args, name) == getattr(config, name), name
    assert not hasattr(args, "early_stopping_patience") and not hasattr(args, "mode")


def test_a_trl_option_reaches_dpo_config_through_a_kfp_struct(tmp_path):
    config = load_config(
        None, ["training.trl={label_smoothing: 0.1, eval_accumulation_steps: 2}"]
    ).training
    # A KFP Struct gives every number back as a float.
    struct = to_params(config)
    struct["trl"] = {k: float(v) for k, v in struct["trl"].items()}
    again = validate_section(TrainingConfig, struct, "pipeline parameter 'training'")
    args = build_dpo_config(again, tmp_path, has_eval=False, progress=False)
    assert args.label_smoothing == 0.1
    assert args.eval_accumulation_steps == 2 and isinstance(args.eval_accumulation_steps, int)
    assert args.beta == 0.1  # everything else as before


@pytest.mark.parametrize(
    ("trl", "message"),
    [
        ({"label_smoothin": 0.1}, "training.trl.label_smoothin: not an option of TRL's DPOConfig"),
        ({"beta": 0.2}, "training.trl.beta: set training.beta instead"),
        ({"output_dir": "/x"}, "training.trl.output_dir: set by xdetox"),
    ],
)
def test_bad_trl_keys_are_one_line_naming_the_key(trl, message, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        build_dpo_config(TrainingConfig(trl=trl), tmp_path, has_eval=False, progress=False)
    assert "\n" not in str(info.value)


def test_unknown_trl_key_from_the_command_line_exits_2(tmp_path, capsys):
    code = main(["dpo", "--data", "toy", "--model", "toy", "--output", str(tmp_path / "o"),
                 "--set", "training.trl.label_smothing=0.1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "training.trl.label_smothing" in err
    assert not (tmp_path / "o").exists()


def test_trl_options_reach_sft_and_online_configs(tmp_path):
    training = TrainingConfig(sft={"trl": {"dataset_num_proc": 2.0}})
    sft = build_sft_config(training, tmp_path, has_eval=False, data_format="text", progress=False)
    assert sft.dataset_num_proc == 2 and isinstance(sft.dataset_num_proc, int)
    rl = RLConfig(online={"trl": {"scale_rewards": "batch"}, "loss_type": "bnpo"}, top_k=5)
    grpo = build_online_args(rl, tmp_path, TrainingConfig(method="grpo"), progress=False)
    assert (grpo.scale_rewards, grpo.loss_type, grpo.top_k) == ("batch", "bnpo", 5)
    rloo_rl = RLConfig(online={"trl": {"scale_rewards": "batch"}})
    with pytest.raises(ConfigError, match=r"rl\.online\.trl\.scale_rewards: not an option"):
        build_online_args(rloo_rl, tmp_path, TrainingConfig(method="rloo"), progress=False)
