"""What a finished transformers ``Trainer`` run reports, the same way for every TRL method.

DPO and SFT (and whatever else runs on a transformers ``Trainer``) keep their log history in
``trainer.state.log_history``: training records (``loss``, method metrics) and evaluation
records (``eval_*`` keys) in one list. Reading it, refusing a diverged run and filling the
summary fields every method shares live here once, so the methods cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from xdetox.errors import XdetoxError


def _is_eval(entry: Mapping[str, Any]) -> bool:
    return any(key.startswith("eval_") for key in entry)


def last_logged(log_history: list[dict], key: str) -> float | None:
    """The value of ``key`` in the last *training* log record that holds a number for it."""
    for entry in reversed(log_history):
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and not _is_eval(entry):
            return float(value)
    return None


def check_finite_losses(log_history: list[dict], *, method: str, hint: str) -> None:
    """Raise when a training or evaluation loss is NaN or infinite: a diverged run must not be
    saved and reported as a model. ``hint`` says which setting to change."""
    for entry in log_history:
        for key in ("loss", "eval_loss"):
            value = entry.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                raise XdetoxError(
                    f"{method} diverged: {key} is {value} at step {entry.get('step')}; {hint}"
                )


def common_summary(
    trainer: Any,
    train_loss: float,
    eval_metrics: Mapping[str, float],
    *,
    wall_time_s: float,
    resumed_from_step: int,
) -> dict[str, float | None]:
    """The summary fields every method reports (None where the run has no such value)."""
    params = list(trainer.model.parameters())
    return {
        "train_loss": train_loss,
        "final_train_loss": last_logged(trainer.state.log_history, "loss"),
        "eval_loss": eval_metrics.get("eval_loss"),
        "steps": trainer.state.global_step,
        "resumed_from_step": resumed_from_step,
        "epochs": trainer.state.epoch,
        "wall_time_s": wall_time_s,
        "n_params_trainable": sum(p.numel() for p in params if p.requires_grad),
        "n_params_total": sum(p.numel() for p in params),
    }


def as_metrics(summary: Mapping[str, float | None]) -> dict[str, float]:
    """Floats for a KFP Metrics artifact; a value the run does not have (e.g. eval loss without
    eval data) is left out, never written as 0."""
    return {key: float(value) for key, value in summary.items() if value is not None}
