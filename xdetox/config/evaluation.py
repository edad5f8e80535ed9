"""The recurring evaluation pipeline: which model, against which baseline, with what margin."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict


class EvaluationConfig(_Strict):
    # The model to evaluate: a local folder, gs://bucket/prefix, a Hugging Face id, or "toy".
    model: str = "toy"
    label: str = "candidate"  # the `model` column of its rows
    # A metrics.csv (local or gs://), or a folder/prefix holding one (a previous run's output).
    # Unset: no comparison, the run only measures.
    baseline: str | None = None
    # Which model's rows of the baseline to compare with; needed when it holds several.
    baseline_label: str | None = None
    metric: Literal["avg_toxicity", "expected_max_toxicity", "toxicity_probability"] = (
        "avg_toxicity"
    )
    # A language regresses when its toxicity rose by more than this (absolute, metric units).
    margin: float = Field(0.02, ge=0.0)
    fail_on_regression: bool = True
