"""DPO preference tuning with TRL 1.16, LoRA (PEFT) or full fine-tuning.

Output folder, written whole and atomically (training runs inside a temporary folder beside it
that is renamed at the end, so a crash never leaves a half model):

* the final model: the LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``) or
  the full model, the best checkpoint's when early stopping is on;
* the tokenizer;
* ``base_config.json``: the base model's ``config.json``, for the merge's architecture check;
* ``training_log.jsonl``: TRL's log history, one line per log/eval step (``loss``,
  ``rewards/margins``, ``rewards/accuracies``, ``eval_loss``, ...);
* ``train_summary.json``: what :func:`train_dpo` returns.

Checkpoints are written to ``checkpoints/`` inside the temporary folder (at most two) and removed
after a successful run unless ``keep_checkpoints``: they hold optimizer state, several times the
size of the model, and a pipeline artifact is uploaded whole.

With LoRA, TRL gets a ``peft_config`` and ``ref_model=None``: the reference policy is the same
network with its adapters disabled, so no second copy of the model is held in memory.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback
from trl import DPOTrainer

from components.dpo.dpo_arguments import build_dpo_config, check_training_config, uses_best_model
from components.dpo.dpo_dataset import build_dataset, load_pair_splits
from components.dpo.lora_targets import resolve_lora_targets, uses_conv1d
from xdetox.config import TrainingConfig
from xdetox.errors import DataError, XdetoxError
from xdetox.files import atomic_dir, write_json, write_jsonl

TRAINING_LOG = "training_log.jsonl"
# The base model's config.json, kept with the adapter so that a merge can check it gets the
# same architecture (the adapter's base_model_name_or_path is a path that may not exist later).
BASE_CONFIG = "base_config.json"
TRAIN_SUMMARY = "train_summary.json"
CHECKPOINTS = "checkpoints"


def load_policy(model_dir: str | Path):
    """Model (fp32: fp16 gave NaN rewards in the XG paper) and tokenizer of ``model_dir``."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load model or tokenizer ({exc})", model_dir) from None
    if tokenizer.eos_token is None:
        # TRL ends every answer with EOS; without one the model never learns where answers stop.
        raise DataError("the tokenizer has no eos_token", model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def build_peft_config(model, config: TrainingConfig):
    """``peft.LoraConfig`` for ``config.lora``, or ``None`` for full fine-tuning (mode "full")."""
    if config.mode == "full":
        return None
    from peft import LoraConfig

    targets = resolve_lora_targets(model, config.lora.target_modules)
    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=targets,
        # GPT-2's Conv1D stores weights transposed; saying so avoids PEFT's warning and guess.
        fan_in_fan_out=uses_conv1d(model, targets),
    )


@contextlib.contextmanager
def _dataset_progress(enabled: bool) -> Iterator[None]:
    """Silence the ``datasets`` bars of TRL's tokenization when progress is off; restore after."""
    was_enabled = datasets.is_progress_bar_enabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _check_finite(log_history: list[dict]) -> None:
    for entry in log_history:
        for key in ("loss", "eval_loss"):
            value = entry.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                raise XdetoxError(
                    f"DPO diverged: {key} is {value} at step {entry.get('step')}; "
                    "lower training.learning_rate or check the model's dtype"
                )


def _last(log_history: list[dict], key: str) -> float | None:
    for entry in reversed(log_history):
        if key in entry and not any(k.startswith("eval_") for k in entry):
            return float(entry[key])
    return None


def _best_step(best_checkpoint: str | None) -> float | None:
    if not best_checkpoint:
        return None
    try:
        return float(Path(best_checkpoint).name.rsplit("-", 1)[-1])
    except ValueError:
        return None


def summarize(
    trainer: DPOTrainer,
    train_loss: float,
    eval_metrics: dict,
    *,
    wall_time_s: float,
    n_train: int,
    n_eval: int,
    n_prompts_truncated: int,
) -> dict[str, float]:
    """Final metrics as floats (for a KFP Metrics artifact); a metric that does not exist here
    (e.g. eval loss without eval pairs) is left out, never written as 0."""
    history = trainer.state.log_history
    model = trainer.model
    summary: dict[str, float | None] = {
        "train_loss": train_loss,
        "final_train_loss": _last(history, "loss"),
        "final_reward_margin": _last(history, "rewards/margins"),
        "final_reward_accuracy": _last(history, "rewards/accuracies"),
        "eval_loss": eval_metrics.get("eval_loss"),
        "eval_reward_margin": eval_metrics.get("eval_rewards/margins"),
        "eval_reward_accuracy": eval_metrics.get("eval_rewards/accuracies"),
        "best_eval_loss": trainer.state.best_metric,
        "best_step": _best_step(trainer.state.best_model_checkpoint),
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "wall_time_s": wall_time_s,
        "n_params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "n_params_total": sum(p.numel() for p in model.parameters()),
        "n_train_pairs": n_train,
        "n_eval_pairs": n_eval,
        "n_prompts_truncated": n_prompts_truncated,
    }
    return {key: float(value) for key, value in summary.items() if value is not None}


def train_dpo(
    model_dir: str | Path,
    data_dir: str | Path,
    output_dir: str | Path,
    config: TrainingConfig,
    *,
    progress: bool = True,
    keep_checkpoints: bool = False,
) -> dict[str, float]:
    """Train ``model_dir`` with DPO on the pairs of ``data_dir``; write it all to ``output_dir``.

    ``data_dir`` is a folder from ``prepare_pairs`` (``train.jsonl``, optional ``eval.jsonl``).
    Returns the summary also written to ``train_summary.json``.
    """
    started = time.monotonic()
    train_records, eval_records = load_pair_splits(data_dir)
    has_eval = bool(eval_records)
    check_training_config(config, has_eval=has_eval)  # fail before the (slow) model load
    model, tokenizer = load_policy(model_dir)
    peft_config = build_peft_config(model, config)

    train_set, n_cut_train = build_dataset(train_records, tokenizer, config.max_prompt_length)
    eval_set, n_cut_eval = (
        build_dataset(eval_records, tokenizer, config.max_prompt_length) if has_eval else (None, 0)
    )

    with atomic_dir(output_dir) as tmp, _dataset_progress(progress):
        args = build_dpo_config(config, tmp / CHECKPOINTS, has_eval=has_eval, progress=progress)
        callbacks = []
        if uses_best_model(config, has_eval=has_eval):
            callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
        trainer = DPOTrainer(
            model=model,
            ref_model=None,
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
        result = trainer.train()
        _check_finite(trainer.state.log_history)
        # Evaluated again on the model that is saved (the best one under early stopping).
        eval_metrics = trainer.evaluate() if has_eval else {}
        _check_finite(trainer.state.log_history)

        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        shutil.copyfile(Path(model_dir) / "config.json", tmp / BASE_CONFIG)
        write_jsonl(tmp / TRAINING_LOG, trainer.state.log_history)
        summary = summarize(
            trainer,
            result.training_loss,
            eval_metrics,
            wall_time_s=time.monotonic() - started,
            n_train=len(train_records),
            n_eval=len(eval_records),
            n_prompts_truncated=n_cut_train + n_cut_eval,
        )
        write_json(tmp / TRAIN_SUMMARY, summary)
        if not keep_checkpoints:
            shutil.rmtree(tmp / CHECKPOINTS, ignore_errors=True)
    return summary
