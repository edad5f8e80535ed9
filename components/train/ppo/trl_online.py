"""TRL 1.16 ``RLOOTrainer`` / ``GRPOTrainer`` with the project's rewards, LoRA presets and prompts.

Both sample ``num_generations`` completions per prompt and use the group as the baseline
(RLOO: leave-one-out mean; GRPO: group mean and standard deviation), so they need no value head.
They take the same reward functions as the compact PPO (``rewards``), and ``None`` rewards are
handled by TRL (left out of the baseline, zero advantage). Prompts are the ``prompt`` field of a
JSON-lines file, cut to their first k tokens like PPO's queries; the other fields become dataset
columns that TRL hands to the reward functions (``language`` for the scorer reward). TRL samples
up to ``max_new_tokens`` (it has no per-completion length draw, so ``min_new_tokens`` is unused).

Which trainer (``training.method``), LoRA/QLoRA/full (``training.mode``, ``lora``, ``qlora``),
gradient checkpointing, bf16 and the seed come from the ``training`` section; the rest from
``rl``.

DeepSpeed: the training stage runs this under ``accelerate launch`` with a config from
``components/train/deepspeed`` when it has several GPUs (``components/train/launch.py``). The TRL
trainers deal with the LoRA + ZeRO-3 pitfalls themselves when given a ``peft_config`` (not a
ready ``PeftModel``), which is why this wrapper passes one: adapters are created in the base
model's dtype and reentrant gradient checkpointing is forced. The training arguments are built
*before* the model is loaded so that, under ZeRO-3 with ``zero3_init_flag``, ``from_pretrained``
already partitions it.

Output folder, written whole and atomically by the main process: the adapter or full model, the
tokenizer, ``base_config.json``, ``training_log.jsonl`` (TRL's log history) and
``train_summary.json``. Checkpoints (``checkpoint-N``, transformers' format) go to
``checkpoint_dir`` (default ``<output_dir>.checkpoints``) and the newest is resumed when
``resume`` (``components/train/checkpointing.py``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import torch

from xdetox.components.train.checkpointing import (
    checkpoint_step,
    clear_checkpoints,
    default_checkpoint_dir,
    files_digest,
    record_run_config,
    resume_checkpoint,
)
from xdetox.components.train.dpo.train_dpo import BASE_CONFIG, TRAIN_SUMMARY, TRAINING_LOG
from xdetox.components.train.outputs import main_process_output, process_state
from xdetox.components.train.policy import (
    build_peft_config,
    check_mode_supported,
    load_policy,
    uses_bf16,
)
from xdetox.components.train.ppo.ppo_config import RESUMABLE_CHANGES, RLConfig, check_rl_config
from xdetox.components.train.ppo.prompt_data import build_queries
from xdetox.components.train.ppo.rewards import RewardFunc, build_reward_function
from xdetox.components.train.progress import dataset_progress
from xdetox.config import TrainingConfig
from xdetox.config.trl_options import build_trl_config, trl_kwargs
from xdetox.errors import ConfigError, DataError, XdetoxError
from xdetox.files import write_json, write_jsonl

# The ``training`` keys RLOO/GRPO read; recorded with the ``rl`` section for resume checks.
ONLINE_TRAINING_KEYS = ("method", "mode", "lora", "qlora", "seed", "gradient_checkpointing", "bf16")


def build_online_args(
    config: RLConfig,
    checkpoint_dir: str | Path,
    training: TrainingConfig,
    *,
    progress: bool = True,
):
    """The ``RLOOConfig`` or ``GRPOConfig`` of one run (checkpoints to ``checkpoint_dir``):
    every ``rl`` and ``rl.online`` key the TRL class also has (``loss_type``: GRPO's only), then
    ``rl.online.trl`` (:func:`xdetox.config.trl_options.trl_kwargs`); below is only what xdetox
    decides itself."""
    from trl import GRPOConfig, RLOOConfig

    method = training.method
    check_rl_config(config, method)
    args_class = {"rloo": RLOOConfig, "grpo": GRPOConfig}.get(method)
    if args_class is None:
        raise ConfigError(f"training.method: expected 'rloo' or 'grpo', got {method!r}")
    defaults: dict[str, Any] = {  # our choices; rl.online.trl may change them
        "logging_first_step": True,
        "data_seed": training.seed,
        # PPO-style ratios need identical log-probs at sampling and at the update.
        "disable_dropout": True,
        "report_to": [],
    }
    if training.gradient_checkpointing:
        # Reentrant checkpointing: the variant that works with PEFT under DeepSpeed ZeRO-3.
        defaults["gradient_checkpointing_kwargs"] = {"use_reentrant": True}
    derived = {  # follow from our own keys (training's shared ones) and the machine
        "output_dir": str(checkpoint_dir),
        "max_completion_length": config.max_new_tokens,
        "save_strategy": "steps",
        "seed": training.seed,
        "gradient_checkpointing": training.gradient_checkpointing,
        "bf16": uses_bf16(training),
        "fp16": False,
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": not progress,
    }
    sections = {"rl": config, "rl.online": config.online}
    kwargs = trl_kwargs(
        args_class, sections, options="rl.online", defaults=defaults, derived=derived
    )
    return build_trl_config(args_class, kwargs, where="rl.online")


def build_prompt_dataset(
    prompts_path: str | Path, tokenizer, config: RLConfig, seed: int
) -> datasets.Dataset:
    """``prompt`` (each cut to its first k tokens) plus the prompt file's other fields."""
    queries = build_queries(
        prompts_path,
        tokenizer,
        config.query_min_tokens,
        config.query_max_tokens,
        seed,
        toxicity_above=config.prompt_toxicity_above,
    )
    names = sorted({key for q in queries for key in q.columns})
    rows = [{"prompt": q.text, **{n: q.columns.get(n) for n in names}} for q in queries]
    try:
        return datasets.Dataset.from_list(rows)
    except Exception as exc:  # pyarrow raises several types for fields of mixed types
        raise DataError(f"prompt fields cannot form a table ({exc})", prompts_path) from None


def build_online_trainer(
    model_dir: str | Path,
    prompts_path: str | Path,
    checkpoint_dir: str | Path,
    config: RLConfig,
    training: TrainingConfig,
    *,
    reward_funcs: RewardFunc | Sequence[RewardFunc] | None = None,
    progress: bool = True,
):
    """A ready ``RLOOTrainer``/``GRPOTrainer`` (LoRA/QLoRA via ``peft_config``, or full)."""
    from trl import GRPOTrainer, RLOOTrainer

    args = build_online_args(config, checkpoint_dir, training, progress=progress)  # before load
    model, tokenizer = load_policy(model_dir, training)
    tokenizer.padding_side = "left"  # TRL generates from left-padded prompts
    train_set = build_prompt_dataset(prompts_path, tokenizer, config, training.seed)
    if reward_funcs is None:
        reward_funcs = [build_reward_function(config.reward)]
    elif callable(reward_funcs):
        reward_funcs = [reward_funcs]
    peft_config = build_peft_config(model, training)
    trainer_class = RLOOTrainer if training.method == "rloo" else GRPOTrainer
    return trainer_class(
        model=model,
        reward_funcs=list(reward_funcs),
        args=args,
        train_dataset=train_set,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def _logged(history: list[dict], key: str) -> list[float]:
    return [float(e[key]) for e in history if isinstance(e.get(key), int | float)]


def summarize_online(
    trainer, *, wall_time_s: float, n_prompts: int, resumed_from_step: int = 0
) -> dict[str, float]:
    """Final metrics as floats; metrics TRL did not log are left out (never 0)."""
    history = trainer.state.log_history
    rewards, kls = _logged(history, "reward"), _logged(history, "kl")
    params = list(trainer.model.parameters())
    summary: dict[str, float | None] = {
        "steps": trainer.state.global_step,
        "resumed_from_step": resumed_from_step,
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "kl_last": kls[-1] if kls else None,
        "n_prompts": n_prompts,
        "n_params_trainable": sum(p.numel() for p in params if p.requires_grad),
        "n_params_total": sum(p.numel() for p in params),
        "wall_time_s": wall_time_s,
    }
    return {k: float(v) for k, v in summary.items() if v is not None}


def run_settings(
    config: RLConfig, training: TrainingConfig, prompts_path: str | Path | None = None
) -> dict[str, Any]:
    """What checkpoints must have been made with to be resumed (dotted keys as in recipes)."""
    return {
        "rl": config.model_dump(mode="json"),
        "training": training.model_dump(mode="json", include=set(ONLINE_TRAINING_KEYS)),
        "prompts_digest": files_digest(prompts_path),
    }


def train_online(
    model_dir: str | Path,
    prompts_path: str | Path,
    output_dir: str | Path,
    config: RLConfig,
    *,
    training: TrainingConfig | None = None,
    reward_funcs: RewardFunc | Sequence[RewardFunc] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    keep_checkpoints: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Train with RLOO or GRPO (``training.method``; default ``TrainingConfig(method="rloo")``)
    and write ``output_dir``; see the module docstring."""
    started = time.monotonic()
    training = training if training is not None else TrainingConfig(method="rloo")
    check_rl_config(config, training.method)
    if training.method not in ("rloo", "grpo"):
        raise ConfigError(f"training.method: expected 'rloo' or 'grpo', got {training.method!r}")
    check_mode_supported(training)
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(output_dir)
    state = process_state()
    settings = run_settings(config, training, prompts_path)
    last = resume_checkpoint(
        checkpoint_dir,
        settings,
        resume=resume,
        allowed_changes=RESUMABLE_CHANGES,
        is_main_process=state.is_main_process,
    )
    state.wait_for_everyone()
    with dataset_progress(progress):
        trainer = build_online_trainer(
            model_dir,
            prompts_path,
            checkpoint_dir,
            config,
            training,
            reward_funcs=reward_funcs,
            progress=progress,
        )
        record_run_config(checkpoint_dir, settings, state.is_main_process)
        trainer.train(resume_from_checkpoint=str(last) if last else None)
    for entry in trainer.state.log_history:
        loss = entry.get("loss")
        if isinstance(loss, float) and loss != loss:
            raise XdetoxError(
                f"{training.method.upper()} diverged: loss is NaN at step {entry.get('step')}; "
                "lower rl.online.learning_rate"
            )
    summary = summarize_online(
        trainer,
        wall_time_s=time.monotonic() - started,
        n_prompts=len(trainer.train_dataset),
        resumed_from_step=checkpoint_step(last),
    )
    main = trainer.accelerator.is_main_process
    trainer.accelerator.wait_for_everyone()
    # Every process takes part in saving (ZeRO-3 gathers the weights); only the main one writes.
    with main_process_output(output_dir, main) as tmp:
        trainer.save_model(str(tmp))
        if main:
            trainer.processing_class.save_pretrained(str(tmp))
            shutil.copyfile(model_dir / "config.json", tmp / BASE_CONFIG)
            write_jsonl(tmp / TRAINING_LOG, trainer.state.log_history)
            write_json(tmp / TRAIN_SUMMARY, summary)
    if main and not keep_checkpoints:
        clear_checkpoints(checkpoint_dir)
    trainer.accelerator.wait_for_everyone()
    return summary
