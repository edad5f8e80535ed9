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
    DataConfig,
    EvaluationConfig,
    GenerationConfig,
    MetricsConfig,
    RLConfig,
    ScoringConfig,
    TrainingConfig,
)
from xdetox.errors import ConfigError
from xdetox.pipelines.detox import SHAPE_KEYS as DETOX_SHAPE_KEYS
from xdetox.pipelines.detox import build_detox_pipeline
from xdetox.pipelines.eval import SHAPE_KEYS as EVAL_SHAPE_KEYS
from xdetox.pipelines.eval import build_eval_pipeline
from xdetox.pipelines.interpret import INTERPRET_PARAMETER_SECTIONS, build_interpret_pipeline
from xdetox.pipelines.interpret import SHAPE_KEYS as INTERPRET_SHAPE_KEYS
from xdetox.pipelines.shape_keys import ShapeKey

# name → factory(config, *, local=False): the ``@dsl.pipeline`` function for that recipe.
PIPELINES: dict[str, Callable[..., Any]] = {
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

# The settings each graph depends on: compiled in, refused by ``--param`` (shape_keys.py).
SHAPE_KEYS: dict[str, tuple[ShapeKey, ...]] = {
    "detox": DETOX_SHAPE_KEYS,
    "eval": EVAL_SHAPE_KEYS,
    "interpret": INTERPRET_SHAPE_KEYS,
}


def get_pipeline_factory(name: str) -> Callable[..., Any]:
    """The factory registered as ``name``; unknown names list the known ones."""
    try:
        return PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(PIPELINES))
        raise ConfigError(f"--pipeline {name!r}: unknown pipeline (known: {known})") from None


def cluster_pipeline_name(name: str) -> str:
    """The name the pipeline carries on the KFP server (and in its UI)."""
    return f"xdetox-{name}"
