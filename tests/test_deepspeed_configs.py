"""The ZeRO accelerate configs parse with accelerate's and DeepSpeed's own config code, and the
launch command is what ``accelerate launch`` accepts (num_processes filled at launch)."""

from __future__ import annotations

import copy

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType

from xdetox.components.train.deepspeed.deepspeed_configs import (
    accelerate_launch_command,
    config_path,
    deepspeed_plugin,
    load_accelerate_config,
)
from xdetox.errors import ConfigError

# Hyperparameters belong to the recipes, not to the infrastructure files.
RECIPE_KEYS = {"learning_rate", "train_batch_size", "gradient_accumulation_steps", "bf16", "fp16"}


def _keys(node) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    return set()


@pytest.mark.parametrize("stage", [2, 3])
def test_config_files_load_with_accelerate(stage):
    config = load_config_from_file(str(config_path(stage)))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == DistributedType.DEEPSPEED
    assert config.num_processes == -1  # placeholder, filled at launch
    section = config.deepspeed_config
    assert section["zero_stage"] == stage
    assert section["offload_optimizer_device"] == "none"
    assert section["offload_param_device"] == "none"
    assert section["zero3_init_flag"] is (stage == 3)
    if stage == 3:
        assert section["zero3_save_16bit_model"] is True
    assert not _keys(load_accelerate_config(stage)) & RECIPE_KEYS


def _fill_auto(ds_config: dict) -> dict:
    """What the HF Trainer does at prepare time: concrete values for the "auto" entries."""
    filled = copy.deepcopy(ds_config)
    filled.update(
        train_batch_size=8,
        train_micro_batch_size_per_gpu=8,
        gradient_accumulation_steps=1,
        gradient_clipping=1.0,
        steps_per_print=10**9,
    )
    return filled


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_parses_the_plugin_config(stage):
    plugin = deepspeed_plugin(stage)
    assert plugin.zero_stage == stage
    assert plugin.zero3_init_flag is (stage == 3)
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == stage
    assert zero["stage3_gather_16bit_weights_on_model_save"] is (stage == 3)

    runtime_config = pytest.importorskip("deepspeed.runtime.config")
    parsed = runtime_config.DeepSpeedConfig(_fill_auto(plugin.deepspeed_config))
    assert parsed.zero_optimization_stage == stage
    assert parsed.zero_enabled
    assert parsed.zero_config.gather_16bit_weights_on_model_save is (stage == 3)
    assert parsed.zero_config.offload_optimizer is None or (
        parsed.zero_config.offload_optimizer.device == "none"
    )
    assert parsed.train_batch_size == 8


@pytest.mark.parametrize(("gpus", "stage"), [(1, 2), (4, 3)])
def test_launch_command_is_accepted_by_accelerate_launch(gpus, stage):
    script = [
        "-m", "xdetox.components.train.ppo.trl_online", "--config", "rl.yaml", "--model-dir", "m"
    ]
    command = accelerate_launch_command(gpus, stage, script)
    assert command[:2] == ["accelerate", "launch"]
    args = launch_command_parser().parse_args(command[2:])
    _validate_launch_command(args)
    assert args.num_processes == gpus
    assert args.use_deepspeed
    assert args.zero_stage == stage
    assert args.zero3_init_flag is (stage == 3)
    assert args.module and args.training_script == "xdetox.components.train.ppo.trl_online"
    assert args.training_script_args == ["--config", "rl.yaml", "--model-dir", "m"]


def test_launch_without_num_processes_is_refused_by_accelerate():
    command = accelerate_launch_command(2, 2, ["train.py"])
    without = [a for a in command[2:] if a not in ("--num_processes", "2")]
    with pytest.raises(ValueError, match="num_processes"):
        _validate_launch_command(launch_command_parser().parse_args(without))


def test_bad_launch_arguments_name_the_argument():
    with pytest.raises(ConfigError, match=r"zero_stage: expected one of \(2, 3\), got 1"):
        accelerate_launch_command(1, 1, ["train.py"])
    with pytest.raises(ConfigError, match="num_gpus: expected a positive integer, got 0"):
        accelerate_launch_command(0, 2, ["train.py"])
    with pytest.raises(ConfigError, match="script_args"):
        accelerate_launch_command(1, 2, "train.py")
