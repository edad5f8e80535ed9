"""The pipelines ``xdetox submit``/``schedule`` can send to a cluster, by short name.

Each entry builds the ``@dsl.pipeline`` function from a validated :class:`Config`, so the
recipe's values become the pipeline's parameter defaults. On the cluster a pipeline is known as
``xdetox-<name>``: uploads find it by that name and add versions to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from xdetox.config import (
    Config,
    DataConfig,
    EvaluationConfig,
    GenerationConfig,
    MetricsConfig,
    RLConfig,
    ScoringConfig,
    TrainingConfig,
)
from xdetox.errors import ConfigError
from xdetox.pipelines.detox import build_detox_pipeline
from xdetox.pipelines.eval import build_eval_pipeline
from xdetox.pipelines.interpret import INTERPRET_PARAMETER_SECTIONS, build_interpret_pipeline

PIPELINES: dict[str, Callable[[Config], Any]] = {
    "detox": build_detox_pipeline,
    "eval": build_eval_pipeline,
    "interpret": build_interpret_pipeline,
}

# The config section behind each dict parameter, so ``--param`` values are validated before
# they travel (the components validate them again on the cluster).
PARAMETER_SECTIONS: dict[str, dict[str, type[BaseModel]]] = {
    "detox": {
        "data": DataConfig,
        "training": TrainingConfig,
        "rl": RLConfig,
        "generation": GenerationConfig,
        "scoring": ScoringConfig,
        "metrics_config": MetricsConfig,
    },
    "eval": {
        "data": DataConfig,
        "generation": GenerationConfig,
        "scoring": ScoringConfig,
        "metrics_config": MetricsConfig,
        "evaluation": EvaluationConfig,
    },
    "interpret": INTERPRET_PARAMETER_SECTIONS,
}


def get_pipeline_factory(name: str) -> Callable[[Config], Any]:
    """The factory registered as ``name``; unknown names list the known ones."""
    try:
        return PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(PIPELINES))
        raise ConfigError(f"--pipeline {name!r}: unknown pipeline (known: {known})") from None


def cluster_pipeline_name(name: str) -> str:
    """The name the pipeline carries on the KFP server (and in its UI)."""
    return f"xdetox-{name}"
