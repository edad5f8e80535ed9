"""The recurring evaluation pipeline: which model, against which baseline, with what margin."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict


class EvaluationConfig(_Strict):
    """The eval pipeline: one model measured per language, compared with a baseline."""

    model: str = Field(
        "toy",
        description="the model to evaluate: a local folder, gs://bucket/prefix, a Hugging Face "
        "id, or toy",
    )
    label: str = Field("candidate", description="the model column of its rows")
    baseline: str | None = Field(
        None,
        description="a metrics.csv (local or gs://), or a folder/prefix holding one (a previous "
        "run's output); None: no comparison, the run only measures",
    )
    baseline_label: str | None = Field(
        None,
        description="which model's rows of the baseline to compare with; needed when it holds "
        "several",
    )
    metric: Literal["avg_toxicity", "expected_max_toxicity", "toxicity_probability"] = Field(
        "avg_toxicity", description="the metrics.csv column compared"
    )
    margin: float = Field(
        0.02,
        ge=0.0,
        description="a language regresses when its metric rose by more than this (absolute)",
    )
    fail_on_regression: bool = Field(True, description="fail the run when a language regressed")
