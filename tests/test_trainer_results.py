"""Reading a transformers Trainer's log history: the last training value, divergence, summary."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from xdetox.components.train.trainer_results import (
    as_metrics,
    check_finite_losses,
    common_summary,
    last_logged,
)
from xdetox.errors import XdetoxError

HISTORY = [
    {"loss": 0.9, "step": 1},
    {"loss": 0.7, "mean_token_accuracy": 0.5, "step": 2},
    {"eval_loss": 0.8, "loss": 0.1, "step": 2},  # an evaluation record: not a training value
    {"train_runtime": 3.0, "step": 2},
]


def test_last_logged_reads_training_records_only():
    assert last_logged(HISTORY, "loss") == 0.7
    assert last_logged(HISTORY, "mean_token_accuracy") == 0.5
    assert last_logged(HISTORY, "rewards/margins") is None
    assert last_logged([{"loss": True}], "loss") is None  # a flag is not a number


def test_a_diverged_run_is_refused_with_the_setting_to_change():
    check_finite_losses(HISTORY, method="SFT", hint="lower it")
    with pytest.raises(XdetoxError, match=r"DPO diverged: eval_loss is nan at step 3; lower lr"):
        check_finite_losses([{"eval_loss": math.nan, "step": 3}], method="DPO", hint="lower lr")


def test_the_common_summary_leaves_out_what_the_run_does_not_have():
    model = torch.nn.Linear(2, 1)  # 3 parameters
    model.bias.requires_grad_(False)
    trainer = SimpleNamespace(
        model=model, state=SimpleNamespace(log_history=HISTORY, global_step=2, epoch=1.0)
    )
    summary = common_summary(trainer, 0.8, {}, wall_time_s=1.5, resumed_from_step=0)
    assert summary["final_train_loss"] == 0.7 and summary["eval_loss"] is None
    assert (summary["n_params_trainable"], summary["n_params_total"]) == (2, 3)
    metrics = as_metrics(summary)
    assert "eval_loss" not in metrics
    assert metrics["steps"] == 2.0 and all(isinstance(v, float) for v in metrics.values())
