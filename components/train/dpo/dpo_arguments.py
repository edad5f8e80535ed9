"""``xdetox.config.TrainingConfig`` → TRL 1.16 ``DPOConfig``, checked before any model loads.

Combinations that transformers would reject deep inside ``Trainer.__init__`` (or accept and do
something surprising with) are turned into one-line :class:`ConfigError` naming the key.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers.trainer_utils import SchedulerType
from transformers.training_args import OptimizerNames
from trl import DPOConfig

from xdetox.components.train.policy import uses_bf16
from xdetox.config import TrainingConfig
from xdetox.errors import ConfigError


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


def uses_best_model(config: TrainingConfig, *, has_eval: bool) -> bool:
    """Early stopping (and reloading the best checkpoint) needs eval pairs and a patience > 0."""
    return has_eval and config.early_stopping_patience > 0


def build_dpo_config(
    config: TrainingConfig, checkpoint_dir: Path, *, has_eval: bool, progress: bool = True
) -> DPOConfig:
    """The ``DPOConfig`` for one run; checkpoints go to ``checkpoint_dir``."""
    check_training_config(config, has_eval=has_eval)
    best = uses_best_model(config, has_eval=has_eval)
    on_cpu = not torch.cuda.is_available()
    kwargs = {}
    if config.gradient_checkpointing:
        # Reentrant checkpointing: the variant that works with PEFT under DeepSpeed ZeRO-3.
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": True}
    return DPOConfig(
        output_dir=str(checkpoint_dir),
        beta=config.beta,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        optim=config.optim,
        max_grad_norm=config.max_grad_norm,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        max_length=config.max_length,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_steps if has_eval else None,
        save_strategy="steps",
        save_steps=config.save_steps,
        # Two checkpoints: the best one and the latest, so both resume and best-model reload work.
        save_total_limit=2,
        logging_steps=config.logging_steps,
        # The first step's rewards (before any update) are the baseline the margins grow from.
        logging_first_step=True,
        load_best_model_at_end=best,
        metric_for_best_model="eval_loss" if best else None,
        greater_is_better=False if best else None,
        seed=config.seed,
        data_seed=config.seed,
        gradient_checkpointing=config.gradient_checkpointing,
        # fp32 weights; bf16 autocast only when asked (or for QLoRA): fp16 gave NaN rewards in XG.
        bf16=uses_bf16(config),
        fp16=False,
        precompute_ref_log_probs=config.precompute_ref_log_probs,
        use_cpu=on_cpu,
        report_to=[],
        disable_tqdm=not progress,
        **kwargs,
    )
