"""The interpret pipeline: why does English detoxification carry over to other languages?

base model (and tuned, if the recipe names one): load, or import from gs://; prepare prompts
  → the interpret graph (:mod:`xdetox.pipelines.interpret_graph`, shared with the detox
    pipeline's ``interpret.run_in_detox`` branch): probe → value vectors → ParallelFor
    intervention sweep → combine → activations → alignment → report

XG's analysis (Li, Yong & Bach 2024). Hyperparameters are pipeline parameters (one dict per stage,
validated inside each component) with the recipe's values as defaults; cluster settings apply
at compile time. Whether a tuned model is compared with the base is decided at compile time by
``interpret.tuned_model`` (one of :data:`SHAPE_KEYS`): KFP's local runner cannot join the
outputs of conditional branches (``dsl.OneOf``), so the pipeline has a ``tuned_model``
parameter only when the recipe names one.
"""

import inspect
from typing import Any

from kfp import dsl
from pydantic import BaseModel

from xdetox.components.prepare_prompts.component import prepare_prompts
from xdetox.components.prepare_prompts.languages import normalise_language
from xdetox.config import (
    ActivationConfig,
    AlignmentConfig,
    Config,
    DataConfig,
    GenerationConfig,
    InterventionConfig,
    ProbeConfig,
    ScoringConfig,
    ValueVectorConfig,
    to_params,
)
from xdetox.errors import ConfigError
from xdetox.pipelines.interpret_graph import (
    STAGE_PARAMETERS,
    InterpretOutputs,
    build_interpret_graph,
)
from xdetox.pipelines.model_inputs import model_artifact
from xdetox.pipelines.recipe_params import data_params, is_external, uncached_stages
from xdetox.pipelines.resources import task_configurer
from xdetox.pipelines.shape_keys import ShapeKey, is_gcs
from xdetox.records import BASE_LABEL

PIPELINE_NAME = "xdetox-interpret"

# The recipe settings the interpret graph depends on (compiled in; ``--param`` cannot change
# them). Without interpret.tuned_model there is no ``tuned_model`` parameter at all.
SHAPE_KEYS = (
    # a gs:// model is imported, any other is loaded
    ShapeKey("model.base", "base_model", shape=is_gcs),
    # a second model for the activations (its presence), imported when on gs://
    ShapeKey("interpret.tuned_model", "tuned_model", shape=is_gcs),
    # an external scorer's results (the sweep's) are never cached
    ShapeKey("scoring.scorer", "scoring", ("scorer",), shape=is_external),
)


# The config section behind each dict parameter (``xdetox submit --param`` validates with it).
INTERPRET_PARAMETER_SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataConfig,
    "probe_config": ProbeConfig,
    "value_vector_config": ValueVectorConfig,
    "intervention_config": InterventionConfig,
    "activation_config": ActivationConfig,
    "alignment_config": AlignmentConfig,
    "generation": GenerationConfig,
    "scoring": ScoringConfig,
}


def interpret_languages(config: Config) -> list[str]:
    """The languages of the sweep (and of the prepared prompts): ``interpret.intervention
    .languages`` or else ``data.languages``; they must include the value-vector language."""
    interpret = config.interpret
    languages = list(interpret.intervention.languages or config.data.languages)
    wanted = interpret.value_vectors.language
    try:
        found = {normalise_language(x) for x in languages}
        wanted_norm = normalise_language(wanted)
    except ValueError as exc:
        raise ConfigError(f"interpret languages: {exc}") from None
    if wanted_norm not in found:
        raise ConfigError(
            f"interpret.value_vectors.language: {wanted!r} is not among the pipeline's "
            f"languages ({', '.join(languages)}); add it to data.languages or "
            "interpret.intervention.languages"
        )
    return languages


def pipeline_defaults(config: Config) -> dict[str, tuple[type, Any]]:
    """Pipeline parameters in order: name → (type, default from the recipe)."""
    interpret = config.interpret
    params: dict[str, tuple[type, Any]] = {"base_model": (str, config.model.base)}
    if interpret.tuned_model is not None:
        params["tuned_model"] = (str, interpret.tuned_model)
    params.update(
        {
            "prompts_source": (str, config.data.prompts),
            "languages": (list, interpret_languages(config)),
            "probe_data": (str, interpret.probe_data),
            "probe_test_data": (str, interpret.probe_test_data or ""),
            "parallel_data": (str, interpret.parallel_data),
            # metrics.csv of a detox run (path or gs://); "" = no correlation with the drop.
            "metrics_csv": (str, interpret.metrics or ""),
            "data": (dict, data_params(config)),
            "probe_config": (dict, to_params(interpret.probe)),
            "value_vector_config": (dict, to_params(interpret.value_vectors)),
            "intervention_config": (dict, to_params(interpret.intervention)),
            "activation_config": (dict, to_params(interpret.activations)),
            "alignment_config": (dict, to_params(interpret.alignment)),
            "generation": (dict, to_params(config.generation)),
            "scoring": (dict, to_params(config.scoring)),
            "run_info": (dict, {"name": config.name, "pipeline": "interpret"}),
        }
    )
    return params


def check_interpret_config(config: Config) -> None:
    """Raise a one-line :class:`ConfigError` for a recipe the pipeline cannot run."""
    interpret_languages(config)
    if config.interpret.tuned_label == BASE_LABEL:
        raise ConfigError(f"interpret.tuned_label: {BASE_LABEL!r} is the base model's label")


def build_interpret_pipeline(config: Config, *, local: bool = False):
    """Return the ``@dsl.pipeline`` function with ``config``'s values as parameter defaults.

    ``local``: for KFP's local runner (models are loaded, never imported from gs://).
    """
    check_interpret_config(config)
    cluster = config.cluster
    interpret = config.interpret
    configure = task_configurer(cluster, uncached_stages(config))
    tuned = interpret.tuned_model is not None
    graph = build_interpret_graph(
        configure, tuned=tuned, metrics="source", parallelism=cluster.parallelism
    )
    params = pipeline_defaults(config)
    names = list(params)

    def interpret_pipeline(*args):
        # KFP calls the pipeline function positionally with one channel per parameter of its
        # signature (set below), so the optional ``tuned_model`` parameter needs no second copy.
        p = dict(zip(names, args, strict=True))
        base = model_artifact(
            configure, p["base_model"], recipe_source=config.model.base, label=BASE_LABEL,
            local=local,
        )  # fmt: skip
        prompts = configure(
            prepare_prompts(source=p["prompts_source"], languages=p["languages"], data=p["data"]),
            "prepare_prompts",
            "prepare prompts",
        )
        models: dict[str, Any] = {}
        if tuned:
            models["tuned_model"] = model_artifact(
                configure, p["tuned_model"], recipe_source=interpret.tuned_model,
                label="tuned", local=local,
            )  # fmt: skip
            models["tuned_label"] = interpret.tuned_label
        result = graph(
            base_model=base,
            prompts=prompts.outputs["prompts"],
            metrics_source=p["metrics_csv"],
            languages=p["languages"],
            probe_data=p["probe_data"],
            probe_test_data=p["probe_test_data"],
            parallel_data=p["parallel_data"],
            **{name: p[name] for name in STAGE_PARAMETERS},
            **models,
        ).set_display_name("interpret")
        outputs = result.outputs
        return InterpretOutputs(report=outputs["report"], markdown=outputs["markdown"])

    interpret_pipeline.__signature__ = inspect.Signature(
        [
            inspect.Parameter(
                name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d, annotation=t
            )
            for name, (t, d) in params.items()
        ],
        return_annotation=InterpretOutputs,
    )
    interpret_pipeline.__name__ = "interpret_pipeline"
    return dsl.pipeline(
        name=PIPELINE_NAME,
        description=(
            "Why English detoxification carries over to other languages: probe, toxic value "
            "vectors, interventions, activations before/after tuning, cross-lingual alignment."
        ),
        pipeline_root=cluster.pipeline_root or None,
    )(interpret_pipeline)


