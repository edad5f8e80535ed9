"""DeepSpeed ZeRO launch configs (accelerate config files) and the command that uses them.

``zero2.yaml`` shards optimizer states and gradients; ``zero3.yaml`` shards the parameters too
(for models that do not fit one GPU). They hold infrastructure only: batch sizes, learning rates
and precision stay in the training recipe, so any recipe runs under either config. Their
``num_processes`` is ``-1``, a placeholder accelerate refuses, so a launch that forgets to say how
many GPUs fails instead of guessing: :func:`accelerate_launch_command` always passes it.

LoRA + ZeRO-3 pitfalls, and how this code base handles them:

* **Gradient checkpointing.** With PEFT under ZeRO-3, non-reentrant checkpointing recomputes
  the forward of partitioned parameters and fails ("recomputed tensors ... do not match" or
  parameters gathered twice). Reentrant checkpointing works.
  ``components/train/dpo/dpo_arguments.py``,
  ``components/train/ppo/trl_online.py``, ``components/train/sft/train_sft.py`` and QLoRA's
  ``prepare_model_for_kbit_training`` (``components/train/policy.py``) set
  ``gradient_checkpointing_kwargs={"use_reentrant": True}`` whenever checkpointing is on; TRL
  1.16's DPO/SFT/RLOO/GRPO trainers also force it when they see PEFT + ZeRO-3.
* **Adapter dtype.** PEFT upcasts LoRA weights to fp32 by default. With a bf16 base, ZeRO-3's
  coalesced all-gather allocates its buffer in the first parameter's dtype, and a mix of bf16
  base and fp32 adapter weights breaks the first step (TypeError). TRL creates the adapters with
  ``autocast_adapter_dtype=False`` (adapter dtype = base dtype) under ZeRO-3 when it is given a
  ``peft_config``; our wrappers therefore always pass a ``peft_config``, never a ready
  ``PeftModel``. The project also loads weights in fp32 (the XG recipe), where base and adapter
  dtypes agree anyway; with ``bf16: true`` in the recipe DeepSpeed casts both together.
* **Loading under ZeRO-3.** ``zero3_init_flag`` only partitions weights that are loaded after
  the DeepSpeed config is known, i.e. after ``TrainingArguments`` exist: the wrappers build the
  arguments first, then load the model.
* **Saving.** ``zero3_save_16bit_model`` gathers a full state dict at save time, so the saved
  adapter/model loads without DeepSpeed; every process takes part in that save and only the main
  one writes the output folder.
* **QLoRA.** A 4-bit base is loaded whole on each process's GPU (``device_map`` = local rank)
  and cannot be sharded by ZeRO-3 here: the training stage refuses ``mode: qlora`` with ZeRO-3
  (``components/train/launch.py``); use ZeRO-2.

The compact PPO (``components/train/ppo/ppo_trainer.py``) runs on one device and does not use these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from xdetox.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent
ZERO_STAGES = (2, 3)


def config_path(zero_stage: int) -> Path:
    """The accelerate config file of ZeRO stage 2 or 3."""
    if zero_stage not in ZERO_STAGES:
        raise ConfigError(f"zero_stage: expected one of {ZERO_STAGES}, got {zero_stage!r}")
    return CONFIG_DIR / f"zero{zero_stage}.yaml"


def load_accelerate_config(zero_stage: int) -> dict[str, Any]:
    """The config file of ``zero_stage`` as a mapping."""
    path = config_path(zero_stage)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "deepspeed_config" not in data:
        raise ConfigError(f"{path}: expected an accelerate config with a deepspeed_config section")
    return data


def deepspeed_plugin(zero_stage: int):
    """accelerate's ``DeepSpeedPlugin`` for the config file of ``zero_stage`` (what
    ``accelerate launch`` builds from it; its ``deepspeed_config`` is the DeepSpeed JSON)."""
    from accelerate.utils import DeepSpeedPlugin

    section = dict(load_accelerate_config(zero_stage)["deepspeed_config"])
    section.pop("deepspeed_multinode_launcher", None)  # a launcher option, not a plugin field
    return DeepSpeedPlugin(**section)


def accelerate_launch_command(
    num_gpus: int, zero_stage: int, script_args: Sequence[str]
) -> list[str]:
    """``accelerate launch`` with the ZeRO config, one process per GPU, then ``script_args``
    (a script path or ``-m module``, and its arguments), e.g.::

        accelerate_launch_command(4, 3, ["-m", "xdetox.components.train.run",
                                         "--config", "run.json", "--model-dir", m,
                                         "--prompts", p, "--output-dir", o])

    (``components/train/launch.py`` builds exactly this for the training stage.)
    """
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 1:
        raise ConfigError(f"num_gpus: expected a positive integer, got {num_gpus!r}")
    if isinstance(script_args, str) or not script_args:
        raise ConfigError("script_args: expected a non-empty list (script or -m module, then args)")
    return [
        "accelerate",
        "launch",
        "--config_file",
        str(config_path(zero_stage)),
        "--num_processes",
        str(num_gpus),
        *[str(a) for a in script_args],
    ]
