"""DPO preference tuning with TRL 1.16: LoRA (PEFT), 4-bit QLoRA (bitsandbytes) or full.

Output folder, written whole and atomically (by the main process only under ``accelerate
launch``), so a crash never leaves a half model:

* the final model: the LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``) or
  the full model, the best checkpoint's when early stopping is on;
* the tokenizer;
* ``base_config.json``: the base model's ``config.json``, for the merge's architecture check;
* ``training_log.jsonl``: TRL's log history, one line per log/eval step (``loss``,
  ``rewards/margins``, ``rewards/accuracies``, ``eval_loss``, ...);
* ``train_summary.json``: what :func:`train_dpo` returns.

Checkpoints go to ``checkpoint_dir`` (default ``<output_dir>.checkpoints``, beside the output so
that they survive a crash: see ``components/train/checkpointing.py``), at most two. With
``resume`` (the default) a run started again continues from the newest complete checkpoint:
optimizer, scheduler, random generators, data order and log history come back, and the steps
already taken are not trained or logged again. Checkpoints are removed after the final save
unless ``keep_checkpoints``: they hold optimizer state, several times the size of the model.

The pairs are tokenized as ``training.tokenization`` says (``dpo_dataset``): by TRL 1.16 from
texts whose prompts were cut here (``xdetox``), or here, as TRL 0.8.6 did for the XG reference
(``trl-0.8.6``; :class:`PairDPOTrainer` then hands the ids to TRL untouched).

With LoRA/QLoRA, TRL gets a ``peft_config`` and ``ref_model=None``: the reference policy is the
same network with its adapters disabled, so no second copy of the model is held in memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from transformers import EarlyStoppingCallback, TrainerCallback
from trl import DPOTrainer

from xdetox.components.train.checkpointing import (
    checkpoint_step,
    default_checkpoint_dir,
    files_digest,
    record_run_config,
    resume_checkpoint,
)
from xdetox.components.train.dpo.dpo_arguments import (
    build_dpo_config,
    check_training_config,
    uses_best_model,
)
from xdetox.components.train.dpo.dpo_dataset import (
    EVAL_FILE,
    TRAIN_FILE,
    build_pair_dataset,
    is_tokenized,
    load_pair_splits,
)
from xdetox.components.train.outputs import (
    BASE_CONFIG,
    TRAIN_SUMMARY,
    TRAINING_LOG,
    process_state,
    save_trained,
)
from xdetox.components.train.policy import build_peft_config, check_mode_supported, load_policy
from xdetox.components.train.progress import dataset_progress
from xdetox.components.train.trainer_results import (
    as_metrics,
    check_finite_losses,
    common_summary,
    last_logged,
)
from xdetox.config import TrainingConfig

__all__ = [
    "BASE_CONFIG",
    "RESUMABLE_TRAINING_KEYS",
    "TRAINING_LOG",
    "TRAIN_SUMMARY",
    "build_peft_config",
    "load_policy",
    "summarize",
    "train_dpo",
]

# Settings that may change between a run and its resumption: how long it runs and how often it
# logs. Anything else (learning rate, beta, LoRA shape, ...) would mix two different runs.
RESUMABLE_TRAINING_KEYS = frozenset(
    {"training.max_steps", "training.num_train_epochs", "training.logging_steps"}
)


class PairDPOTrainer(DPOTrainer):
    """TRL's ``DPOTrainer``, except that a dataset already holding token ids (built by
    ``dpo_dataset.build_tokenized_dataset`` for ``training.tokenization: trl-0.8.6``) is used as
    it is: TRL 1.16 would read texts and tokenize them again its own way."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if is_tokenized(dataset):
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)


def _check_finite(log_history: list[dict]) -> None:
    check_finite_losses(
        log_history, method="DPO", hint="lower training.learning_rate or check the model's dtype"
    )


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
    n_answers_truncated: int | None = None,
    resumed_from_step: int = 0,
) -> dict[str, float]:
    """Final metrics as floats (for a KFP Metrics artifact); a metric that does not exist here
    (e.g. eval loss without eval pairs) is left out, never written as 0."""
    history = trainer.state.log_history
    return as_metrics(
        {
            **common_summary(
                trainer,
                train_loss,
                eval_metrics,
                wall_time_s=wall_time_s,
                resumed_from_step=resumed_from_step,
            ),
            "final_reward_margin": last_logged(history, "rewards/margins"),
            "final_reward_accuracy": last_logged(history, "rewards/accuracies"),
            "eval_reward_margin": eval_metrics.get("eval_rewards/margins"),
            "eval_reward_accuracy": eval_metrics.get("eval_rewards/accuracies"),
            "best_eval_loss": trainer.state.best_metric,
            "best_step": _best_step(trainer.state.best_model_checkpoint),
            "n_train_pairs": n_train,
            "n_eval_pairs": n_eval,
            "n_prompts_truncated": n_prompts_truncated,
            # Only tokenization trl-0.8.6 cuts answers (xdetox leaves it to TRL's max_length).
            "n_answers_truncated": n_answers_truncated,
        }
    )


def train_dpo(
    model_dir: str | Path,
    data_dir: str | Path,
    output_dir: str | Path,
    config: TrainingConfig,
    *,
    progress: bool = True,
    keep_checkpoints: bool = False,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, float]:
    """Train ``model_dir`` with DPO on the pairs of ``data_dir``; write it all to ``output_dir``.

    ``data_dir`` is a folder from ``prepare_pairs`` (``train.jsonl``, optional ``eval.jsonl``).
    ``checkpoint_dir``/``resume``: see the module docstring; ``callbacks`` are extra
    transformers ``TrainerCallback``s. Returns the summary also written to
    ``train_summary.json``.
    """
    started = time.monotonic()
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    train_records, eval_records = load_pair_splits(data_dir)
    has_eval = bool(eval_records)
    # Everything that can be checked is checked before the (slow) model load.
    check_training_config(config, has_eval=has_eval)
    check_mode_supported(config)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(output_dir)
    # Arguments before the model: under ZeRO-3 from_pretrained then loads the weights sharded.
    args = build_dpo_config(config, checkpoint_dir, has_eval=has_eval, progress=progress)
    state = process_state()
    run_config = {
        "training": config.model_dump(mode="json"),
        "data": files_digest(data_dir / TRAIN_FILE, data_dir / EVAL_FILE),
    }
    last = resume_checkpoint(
        checkpoint_dir,
        run_config,
        resume=resume,
        allowed_changes=RESUMABLE_TRAINING_KEYS,
        is_main_process=state.is_main_process,
    )
    state.wait_for_everyone()
    model, tokenizer = load_policy(model_dir, config)
    peft_config = build_peft_config(model, config)

    train_set, cut_train = build_pair_dataset(train_records, tokenizer, config)
    eval_set, cut_eval = (
        build_pair_dataset(eval_records, tokenizer, config) if has_eval else (None, {})
    )
    cut = {key: n + cut_eval.get(key, 0) for key, n in cut_train.items()}

    with dataset_progress(progress):
        all_callbacks = list(callbacks)
        if uses_best_model(config, has_eval=has_eval):
            all_callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
        trainer = PairDPOTrainer(
            model=model,
            ref_model=None,
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=all_callbacks,
        )
        record_run_config(checkpoint_dir, run_config, state.is_main_process)
        result = trainer.train(resume_from_checkpoint=str(last) if last else None)
        _check_finite(trainer.state.log_history)
        # Evaluated again on the model that is saved (the best one under early stopping).
        eval_metrics = trainer.evaluate() if has_eval else {}
        _check_finite(trainer.state.log_history)

    summary = summarize(
        trainer,
        result.training_loss,
        eval_metrics,
        wall_time_s=time.monotonic() - started,
        n_train=len(train_records),
        n_eval=len(eval_records),
        n_prompts_truncated=cut["n_prompts_truncated"],
        n_answers_truncated=cut.get("n_answers_truncated"),
        resumed_from_step=checkpoint_step(last),
    )
    save_trained(
        trainer,
        tokenizer,
        model_dir,
        output_dir,
        summary,
        checkpoint_dir=checkpoint_dir,
        keep_checkpoints=keep_checkpoints,
    )
    return summary
