"""``xdetox.config.TrainingConfig`` → TRL 1.16 ``DPOConfig``, checked before any model loads.

The section's keys reach ``DPOConfig`` by name (``xdetox.config.trl_options``), not one by one.

Combinations that transformers would reject deep inside ``Trainer.__init__`` (or accept and do
something surprising with) are turned into one-line :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers.trainer_utils import SchedulerType
from transformers.training_args import OptimizerNames
from trl import DPOConfig

from xdetox.components.train.policy import uses_bf16
from xdetox.config import TrainingConfig
from xdetox.config.trl_options import build_trl_config, trl_kwargs
from xdetox.errors import ConfigError

log = logging.getLogger(__name__)


def check_optimizer(optim: str, lr_scheduler_type: str, prefix: str = "training") -> None:
    """Raise :class:`ConfigError` naming ``<prefix>.optim``/``lr_scheduler_type`` when unknown."""
    optimizers = {o.value for o in OptimizerNames}
    if optim not in optimizers:
        raise ConfigError(
            f"{prefix}.optim: unknown optimizer {optim!r} (e.g. rmsprop, adamw_torch)"
        )
    schedulers = {s.value for s in SchedulerType}
    if lr_scheduler_type not in schedulers:
        raise ConfigError(
            f"{prefix}.lr_scheduler_type: unknown scheduler {lr_scheduler_type!r} "
            f"(one of {', '.join(sorted(schedulers))})"
        )


def check_training_config(config: TrainingConfig, *, has_eval: bool) -> None:
    """Raise :class:`ConfigError` for values TRL/transformers would reject or misuse."""
    check_optimizer(config.optim, config.lr_scheduler_type)
    if config.fp16 and config.bf16:
        # transformers refuses both; said here with the keys' names.
        raise ConfigError("training.fp16: fp16 and training.bf16 cannot both be true")
    if config.max_prompt_length >= config.max_length:
        # TRL drops every pair whose prompt alone fills max_length: nothing would be trained.
        raise ConfigError(
            f"training.max_prompt_length ({config.max_prompt_length}) must be smaller than "
            f"training.max_length ({config.max_length})"
        )
    if uses_best_model(config, has_eval=has_eval) and config.save_steps % config.eval_steps:
        # load_best_model_at_end can only reload checkpoints saved at evaluation steps.
        raise ConfigError(
            f"training.save_steps ({config.save_steps}) must be a multiple of training.eval_steps "
            f"({config.eval_steps}) when early stopping is on"
        )


def mixed_precision(config: TrainingConfig) -> tuple[bool, bool]:
    """``(bf16, fp16)`` for TRL: autocast dtypes over the fp32 weights, never both.

    ``training.fp16`` (XG trained with fp16 autocast) is a GPU setting like ``bf16``: without
    CUDA it is switched off with a warning instead of failing, so that a recipe which sets it
    still runs a CPU smoke test. Set, it also turns off the bf16 that ``bf16: None`` would pick
    for QLoRA: fp16 was asked for by name.
    """
    if not config.fp16:
        return uses_bf16(config), False
    if not torch.cuda.is_available():
        log.warning("training.fp16: no CUDA GPU here, so training runs in fp32 (fp16 is GPU only)")
        return False, False
    return False, True


def uses_best_model(config: TrainingConfig, *, has_eval: bool) -> bool:
    """Early stopping (and reloading the best checkpoint) needs eval pairs and a patience > 0."""
    return has_eval and config.early_stopping_patience > 0


def build_dpo_config(
    config: TrainingConfig, checkpoint_dir: Path, *, has_eval: bool, progress: bool = True
) -> DPOConfig:
    """The ``DPOConfig`` for one run; checkpoints go to ``checkpoint_dir``.

    Every ``training`` key that TRL's ``DPOConfig`` also has is passed as it is, then the
    ``training.trl`` options (:func:`xdetox.config.trl_options.trl_kwargs`); below is only what
    xdetox decides itself.
    """
    check_training_config(config, has_eval=has_eval)
    best = uses_best_model(config, has_eval=has_eval)
    bf16, fp16 = mixed_precision(config)
    defaults = {  # our choices; training.trl may change them
        "per_device_eval_batch_size": config.per_device_train_batch_size,
        # Two checkpoints: the best one and the latest, so both resume and best-model reload work.
        "save_total_limit": 2,
        # The first step's rewards (before any update) are the baseline the margins grow from.
        "logging_first_step": True,
        "data_seed": config.seed,
        "report_to": [],
    }
    if config.gradient_checkpointing:
        # Reentrant checkpointing: the variant that works with PEFT under DeepSpeed ZeRO-3.
        defaults["gradient_checkpointing_kwargs"] = {"use_reentrant": True}
    derived = {  # follow from our own keys and the machine
        "output_dir": str(checkpoint_dir),
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": config.eval_steps if has_eval else None,
        "save_strategy": "steps",
        "load_best_model_at_end": best,
        "metric_for_best_model": "eval_loss" if best else None,
        "greater_is_better": False if best else None,
        # fp32 weights (policy.load_policy); autocast only when asked (bf16 also for QLoRA).
        "bf16": bf16,
        "fp16": fp16,
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": not progress,
    }
    kwargs = trl_kwargs(
        DPOConfig, {"training": config}, options="training", defaults=defaults, derived=derived
    )
    return build_trl_config(DPOConfig, kwargs, where="training")
