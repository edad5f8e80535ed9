"""Snapshots of the model part-way through training, for the dose-response evaluation.

``training.dose_response: [0.25, 0.5, 0.75]`` saves the trained weights (the adapter under LoRA,
the whole model under full tuning) with the tokenizer after 25%, 50% and 75% of the optimizer
steps, into ``<snapshot dir>/at25`` etc.; the pipeline evaluates each beside the final model.
Checkpoints (``save_steps``) are not used for this: their steps depend on ``save_steps`` and the
resumable state, and they are removed after training.

A snapshot is written atomically by the main process only, once (a resumed run that already
has it keeps it). ZeRO-3 shards the weights over processes, so there snapshots are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from xdetox.components.train.snapshot_files import SNAPSHOT_INFO, snapshot_name
from xdetox.errors import ConfigError
from xdetox.files import atomic_dir, write_json


def snapshot_steps(fractions: list[float], max_steps: int) -> dict[int, float]:
    """``{optimizer step: fraction}``; each fraction at ``round(f × max_steps)`` (at least 1)."""
    steps: dict[int, float] = {}
    for fraction in sorted(fractions):
        step = max(1, round(fraction * max_steps))
        if step in steps or step >= max_steps:
            raise ConfigError(
                f"training.dose_response: {fraction} of {max_steps} steps is step {step}, "
                "which another fraction or the final model already has; train longer or ask "
                "for fewer fractions"
            )
        steps[step] = fraction
    return steps


class SnapshotCallback(TrainerCallback):
    """Saves the model after the configured fractions of training (see module docstring)."""

    def __init__(self, folder: str | Path, fractions: list[float]):
        self.folder = Path(folder)
        self.fractions = list(fractions)
        self.steps: dict[int, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        from transformers.integrations import is_deepspeed_zero3_enabled

        if is_deepspeed_zero3_enabled():
            raise ConfigError("training.dose_response: snapshots are not taken under ZeRO-3")
        self.steps = snapshot_steps(self.fractions, state.max_steps)

    def on_step_end(self, args, state, control, model: Any = None, **kwargs):
        fraction = self.steps.get(state.global_step)
        if fraction is None or not state.is_world_process_zero or model is None:
            return
        target = self.folder / snapshot_name(fraction)
        if (target / SNAPSHOT_INFO).is_file():
            return  # taken before a resume
        tokenizer = kwargs.get("processing_class") or kwargs.get("tokenizer")
        with atomic_dir(target) as tmp:
            model.save_pretrained(str(tmp))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(tmp))
            write_json(tmp / SNAPSHOT_INFO, {"fraction": fraction, "step": state.global_step,
                                             "max_steps": state.max_steps})  # fmt: skip
