"""Supervised fine-tuning with TRL 1.16's ``SFTTrainer``: LoRA, 4-bit QLoRA or full.

The first stage of ``training.method: sft_dpo`` (the model card's recipe: instruction tuning,
then DPO from the instruction-tuned model; ``components/train/sft/sft_then_dpo.py``), also
runnable on its own (``xdetox sft``). Hyperparameters: ``training.sft``; the adaptation (``mode``,
``lora``,
``qlora``), gradient checkpointing, bf16 and the seed are shared with DPO from ``training``.

Output folder, written whole and atomically (main process only under ``accelerate launch``): the
adapter or full model, the tokenizer, ``base_config.json``, ``training_log.jsonl`` (TRL's log
history: ``loss``, ``mean_token_accuracy``, ``eval_loss``, ...) and ``train_summary.json``.
Checkpoints and resume work as for DPO (``components/train/checkpointing.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from transformers import TrainerCallback

from xdetox.components.train.checkpointing import (
    checkpoint_step,
    default_checkpoint_dir,
    files_digest,
    record_run_config,
    resume_checkpoint,
)
from xdetox.components.train.dpo.dpo_arguments import check_optimizer
from xdetox.components.train.outputs import process_state, save_trained
from xdetox.components.train.policy import (
    build_peft_config,
    check_mode_supported,
    load_policy,
    uses_bf16,
)
from xdetox.components.train.progress import dataset_progress
from xdetox.components.train.sft.sft_data import (
    EVAL_FILE,
    MESSAGES,
    PAIRS,
    PROMPT_COMPLETION,
    TRAIN_FILE,
    load_sft_splits,
    to_dataset,
)
from xdetox.components.train.trainer_results import (
    as_metrics,
    check_finite_losses,
    common_summary,
    last_logged,
)
from xdetox.config import TrainingConfig
from xdetox.config.trl_options import build_trl_config, trl_kwargs
from xdetox.errors import DataError

# The ``training`` keys SFT reads (its checkpoints stay valid when, say, DPO's beta changes).
SFT_TRAINING_KEYS = ("mode", "lora", "qlora", "seed", "gradient_checkpointing", "bf16", "sft")
RESUMABLE_SFT_KEYS = frozenset(
    {"training.sft.max_steps", "training.sft.num_train_epochs", "training.sft.logging_steps"}
)


def build_sft_config(
    config: TrainingConfig,
    checkpoint_dir: str | Path,
    *,
    has_eval: bool,
    data_format: str,
    progress: bool = True,
):
    """TRL's ``SFTConfig`` for ``config.sft`` (checkpoints to ``checkpoint_dir``): every
    ``training.sft`` key that ``SFTConfig`` also has, then ``training.sft.trl``
    (:func:`xdetox.config.trl_options.trl_kwargs`); below is only what xdetox decides."""
    import torch
    from trl import SFTConfig

    sft = config.sft
    check_optimizer(sft.optim, sft.lr_scheduler_type, prefix="training.sft")
    defaults = {  # our choices; training.sft.trl may change them
        "per_device_eval_batch_size": sft.per_device_train_batch_size,
        "packing": False,
        "save_total_limit": 2,
        "logging_first_step": True,
        "data_seed": config.seed,
        "report_to": [],
    }
    if config.gradient_checkpointing:
        # Reentrant checkpointing: the variant that works with PEFT under DeepSpeed ZeRO-3.
        defaults["gradient_checkpointing_kwargs"] = {"use_reentrant": True}
    # Completion-only loss exists for prompt-completion rows alone; TRL refuses it otherwise.
    completion_only = data_format in (PROMPT_COMPLETION, PAIRS)
    derived = {  # follow from our own keys (and the shared training ones) and the machine
        "output_dir": str(checkpoint_dir),
        "completion_only_loss": sft.completion_only_loss if completion_only else None,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": sft.eval_steps if has_eval else None,
        "save_strategy": "steps",
        "seed": config.seed,
        "gradient_checkpointing": config.gradient_checkpointing,
        "bf16": uses_bf16(config),
        "fp16": False,
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": not progress,
    }
    kwargs = trl_kwargs(
        SFTConfig, {"training.sft": sft}, options="training.sft", defaults=defaults, derived=derived
    )
    return build_trl_config(SFTConfig, kwargs, where="training.sft")


def summarize_sft(
    trainer,
    train_loss: float,
    eval_metrics: dict,
    *,
    wall_time_s: float,
    n_train: int,
    n_eval: int,
    resumed_from_step: int,
) -> dict[str, float]:
    """Final metrics as floats; a metric that does not exist here is left out, never 0."""
    return as_metrics(
        {
            **common_summary(
                trainer,
                train_loss,
                eval_metrics,
                wall_time_s=wall_time_s,
                resumed_from_step=resumed_from_step,
            ),
            "final_mean_token_accuracy": last_logged(
                trainer.state.log_history, "mean_token_accuracy"
            ),
            "eval_mean_token_accuracy": eval_metrics.get("eval_mean_token_accuracy"),
            "n_train_examples": n_train,
            "n_eval_examples": n_eval,
        }
    )


def _data_files(source: Path) -> tuple[Path, ...]:
    return (source / TRAIN_FILE, source / EVAL_FILE) if source.is_dir() else (source,)


def train_sft(
    model_dir: str | Path,
    data: str | Path,
    output_dir: str | Path,
    config: TrainingConfig,
    *,
    progress: bool = True,
    keep_checkpoints: bool = False,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, float]:
    """Fine-tune ``model_dir`` on ``data`` (a file or a train/eval folder: ``sft_data``) and
    write ``output_dir``; returns the summary also written to ``train_summary.json``."""
    from trl import SFTTrainer

    started = time.monotonic()
    data, output_dir = Path(data), Path(output_dir)
    train_rows, eval_rows, data_format = load_sft_splits(data)
    has_eval = bool(eval_rows)
    check_mode_supported(config)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(output_dir)
    args = build_sft_config(
        config, checkpoint_dir, has_eval=has_eval, data_format=data_format, progress=progress
    )
    state = process_state()
    run_config = {
        "training": config.model_dump(mode="json", include=set(SFT_TRAINING_KEYS)),
        "data": files_digest(*_data_files(data)),
    }
    last = resume_checkpoint(
        checkpoint_dir,
        run_config,
        resume=resume,
        allowed_changes=RESUMABLE_SFT_KEYS,
        is_main_process=state.is_main_process,
    )
    state.wait_for_everyone()
    model, tokenizer = load_policy(model_dir, config)
    if data_format == MESSAGES and not getattr(tokenizer, "chat_template", None):
        raise DataError(
            "messages data needs a tokenizer with a chat template (this one has none); "
            "use prompt/completion or text lines",
            model_dir,
        )
    with dataset_progress(progress):
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=to_dataset(train_rows),
            eval_dataset=to_dataset(eval_rows) if has_eval else None,
            processing_class=tokenizer,
            peft_config=build_peft_config(model, config),
            callbacks=list(callbacks),
        )
        record_run_config(checkpoint_dir, run_config, state.is_main_process)
        result = trainer.train(resume_from_checkpoint=str(last) if last else None)
        eval_metrics = trainer.evaluate() if has_eval else {}
    check_finite_losses(
        trainer.state.log_history, method="SFT", hint="lower training.sft.learning_rate"
    )
    summary = summarize_sft(
        trainer,
        result.training_loss,
        eval_metrics,
        wall_time_s=time.monotonic() - started,
        n_train=len(train_rows),
        n_eval=len(eval_rows),
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
