"""TRL 1.16 ``RLOOTrainer`` / ``GRPOTrainer`` with the project's rewards, LoRA presets and prompts.

Both sample ``num_generations`` completions per prompt and use the group as the baseline
(RLOO: leave-one-out mean; GRPO: group mean and standard deviation), so they need no value head.
They take the same reward functions as the compact PPO (``rewards``), and ``None`` rewards are
handled by TRL (left out of the baseline, zero advantage). Prompts are the ``prompt`` field of a
JSON-lines file, cut to their first k tokens like PPO's queries; the other fields become dataset
columns that TRL hands to the reward functions (``language`` for the scorer reward). TRL samples
up to ``max_new_tokens`` (it has no per-completion length draw, so ``min_new_tokens`` is unused).

DeepSpeed: run this module under ``accelerate launch`` with a config from
``components/train_configs`` (``accelerate_launch_command``). The TRL trainers deal with the
LoRA + ZeRO-3 pitfalls themselves when given a ``peft_config`` (not a ready ``PeftModel``), which
is why this wrapper passes one: adapters are created in the base model's dtype and reentrant
gradient checkpointing is forced. The training arguments are built *before* the model is loaded
so that, under ZeRO-3 with ``zero3_init_flag``, ``from_pretrained`` already partitions it.

Output folder, written whole and atomically by the main process: the adapter or full model, the
tokenizer, ``base_config.json``, ``training_log.jsonl`` (TRL's log history) and
``train_summary.json``. Checkpoints (``checkpoint-N``, transformers' format) go to
``checkpoint_dir`` and the newest is resumed when ``resume``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
import yaml
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from components.dpo.train_dpo import (
    BASE_CONFIG,
    TRAIN_SUMMARY,
    TRAINING_LOG,
    build_peft_config,
    load_policy,
)
from components.ppo.ppo_config import RLConfig, check_rl_config
from components.ppo.prompt_data import build_queries
from components.ppo.rewards import RewardFunc, build_reward_function
from xdetox.config import TrainingConfig, validate_section
from xdetox.errors import ConfigError, DataError, XdetoxError
from xdetox.files import atomic_dir, write_json, write_jsonl

CHECKPOINTS = "checkpoints"


def build_online_args(config: RLConfig, checkpoint_dir: str | Path, *, progress: bool = True):
    """The ``RLOOConfig`` or ``GRPOConfig`` of one run (checkpoints to ``checkpoint_dir``)."""
    from trl import GRPOConfig, RLOOConfig

    check_rl_config(config)
    online = config.online
    kwargs: dict[str, Any] = {}
    if online.gradient_checkpointing:
        # Reentrant checkpointing: the variant that works with PEFT under DeepSpeed ZeRO-3.
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": True}
    if config.method == "grpo" and online.loss_type is not None:
        kwargs["loss_type"] = online.loss_type
    args_class = {"rloo": RLOOConfig, "grpo": GRPOConfig}.get(config.method)
    if args_class is None:
        raise ConfigError(f"training.method: expected 'rloo' or 'grpo', got {config.method!r}")
    on_cpu = not torch.cuda.is_available()
    try:
        return args_class(
            output_dir=str(checkpoint_dir),
            learning_rate=online.learning_rate,
            per_device_train_batch_size=online.per_device_train_batch_size,
            gradient_accumulation_steps=online.gradient_accumulation_steps,
            num_generations=online.num_generations,
            max_completion_length=config.max_new_tokens,
            temperature=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
            beta=online.beta,
            epsilon=online.epsilon,
            num_iterations=online.num_iterations,
            max_grad_norm=online.max_grad_norm,
            max_steps=config.max_steps,
            save_strategy="steps",
            save_steps=config.save_steps,
            save_total_limit=config.save_total_limit,
            logging_steps=online.logging_steps,
            logging_first_step=True,
            seed=config.seed,
            data_seed=config.seed,
            # PPO-style ratios need identical log-probs at sampling and at the update.
            disable_dropout=True,
            gradient_checkpointing=online.gradient_checkpointing,
            bf16=online.bf16 and not on_cpu,
            fp16=False,
            use_cpu=on_cpu,
            report_to=[],
            disable_tqdm=not progress,
            **kwargs,
        )
    except ValueError as exc:
        raise ConfigError(f"training.online: {exc}") from None


def build_prompt_dataset(prompts_path: str | Path, tokenizer, config: RLConfig) -> datasets.Dataset:
    """``prompt`` (each cut to its first k tokens) plus the prompt file's other fields."""
    queries = build_queries(
        prompts_path, tokenizer, config.query_min_tokens, config.query_max_tokens, config.seed
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
    *,
    reward_funcs: RewardFunc | Sequence[RewardFunc] | None = None,
    progress: bool = True,
):
    """A ready ``RLOOTrainer``/``GRPOTrainer`` (LoRA via ``peft_config`` unless mode is full)."""
    from trl import GRPOTrainer, RLOOTrainer

    args = build_online_args(config, checkpoint_dir, progress=progress)  # before the model load
    model, tokenizer = load_policy(model_dir)
    tokenizer.padding_side = "left"  # TRL generates from left-padded prompts
    train_set = build_prompt_dataset(prompts_path, tokenizer, config)
    if reward_funcs is None:
        reward_funcs = [build_reward_function(config.reward)]
    elif callable(reward_funcs):
        reward_funcs = [reward_funcs]
    peft_config = build_peft_config(model, TrainingConfig(mode=config.mode, lora=config.lora))
    trainer_class = RLOOTrainer if config.method == "rloo" else GRPOTrainer
    return trainer_class(
        model=model,
        reward_funcs=list(reward_funcs),
        args=args,
        train_dataset=train_set,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


@contextlib.contextmanager
def _dataset_progress(enabled: bool) -> Iterator[None]:
    was_enabled = datasets.is_progress_bar_enabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _logged(history: list[dict], key: str) -> list[float]:
    return [float(e[key]) for e in history if isinstance(e.get(key), int | float)]


def summarize_online(trainer, *, wall_time_s: float, n_prompts: int) -> dict[str, float]:
    """Final metrics as floats; metrics TRL did not log are left out (never 0)."""
    history = trainer.state.log_history
    rewards, kls = _logged(history, "reward"), _logged(history, "kl")
    params = list(trainer.model.parameters())
    summary: dict[str, float | None] = {
        "steps": trainer.state.global_step,
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "kl_last": kls[-1] if kls else None,
        "n_prompts": n_prompts,
        "n_params_trainable": sum(p.numel() for p in params if p.requires_grad),
        "n_params_total": sum(p.numel() for p in params),
        "wall_time_s": wall_time_s,
    }
    return {k: float(v) for k, v in summary.items() if v is not None}


def _clear_checkpoints(folder: Path) -> None:
    if folder.is_dir():
        for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
            shutil.rmtree(path, ignore_errors=True)


def train_online(
    model_dir: str | Path,
    prompts_path: str | Path,
    output_dir: str | Path,
    config: RLConfig,
    *,
    reward_funcs: RewardFunc | Sequence[RewardFunc] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    keep_checkpoints: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Train with RLOO or GRPO (``config.method``) and write ``output_dir``; see module doc."""
    started = time.monotonic()
    check_rl_config(config)
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else output_dir / CHECKPOINTS
    if not resume:
        _clear_checkpoints(checkpoint_dir)
    with _dataset_progress(progress):
        trainer = build_online_trainer(
            model_dir,
            prompts_path,
            checkpoint_dir,
            config,
            reward_funcs=reward_funcs,
            progress=progress,
        )
        last = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
        trainer.train(resume_from_checkpoint=last if resume and last else None)
    for entry in trainer.state.log_history:
        loss = entry.get("loss")
        if isinstance(loss, float) and loss != loss:
            raise XdetoxError(
                f"{config.method.upper()} diverged: loss is NaN at step {entry.get('step')}; "
                "lower training.online.learning_rate"
            )
    summary = summarize_online(
        trainer, wall_time_s=time.monotonic() - started, n_prompts=len(trainer.train_dataset)
    )
    main = trainer.accelerator.is_main_process
    inside = checkpoint_dir.resolve().is_relative_to(output_dir.resolve())
    trainer.accelerator.wait_for_everyone()
    # Every process takes part in saving (ZeRO-3 gathers the weights); only the main one writes.
    target = atomic_dir(output_dir) if main else tempfile.TemporaryDirectory()
    with target as tmp:
        tmp = Path(tmp)
        trainer.save_model(str(tmp))
        if main:
            trainer.processing_class.save_pretrained(str(tmp))
            shutil.copyfile(model_dir / "config.json", tmp / BASE_CONFIG)
            write_jsonl(tmp / TRAINING_LOG, trainer.state.log_history)
            write_json(tmp / TRAIN_SUMMARY, summary)
            if keep_checkpoints and inside and checkpoint_dir.is_dir():
                shutil.move(str(checkpoint_dir), str(tmp / CHECKPOINTS))
    if main and not keep_checkpoints and not inside:
        _clear_checkpoints(checkpoint_dir)
    trainer.accelerator.wait_for_everyone()
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command line for ``accelerate launch -m components.ppo.trl_online ...`` (multi-GPU runs).

    ``--config`` is a YAML file holding the ``RLConfig`` mapping (the ``training`` section).
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--prompts", required=True, help="JSON lines with a 'prompt' field")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--config", required=True, help="YAML file: the RL config mapping")
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args(argv)
    path = Path(args.config)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    config = validate_section(RLConfig, data, str(path))
    summary = train_online(
        args.model_dir,
        args.prompts,
        args.output_dir,
        config,
        checkpoint_dir=args.checkpoint_dir,
        resume=not args.no_resume,
    )
    print(yaml.safe_dump(summary, sort_keys=True), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
