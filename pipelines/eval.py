"""The evaluation pipeline, for schedules: measure one model per language, compare to a baseline.

model (load, or import from gs://) ─┬─ prepare prompts
ParallelFor language: evaluate-language (generate → score → metrics, examples), as in detox
Collected → report → compare with baseline → (regression and fail_on_regression) → fail the run

A nightly schedule (``xdetox schedule --pipeline eval``) that fails when a language regressed
shows up red in the KFP UI, with the regressed languages in the run's Metrics and HTML.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset

from xdetox.components.compare.component import compare_with_baseline, fail_run
from xdetox.components.prepare_prompts.component import prepare_prompts
from xdetox.config import Config, to_params
from xdetox.config.metrics import needs_reference_model
from xdetox.pipelines.model_inputs import model_artifact
from xdetox.pipelines.per_language import SINGLE, build_language_evaluation, collect_languages
from xdetox.pipelines.recipe_params import data_params, is_external, uncached_stages
from xdetox.pipelines.resources import task_configurer
from xdetox.pipelines.shape_keys import ShapeKey, is_gcs

PIPELINE_NAME = "xdetox-eval"

# The recipe settings the eval graph depends on (compiled in; ``--param`` cannot change them).
SHAPE_KEYS = (
    # a gs:// model is imported, any other is loaded
    ShapeKey("evaluation.model", "model", shape=is_gcs),
    # a second scorer adds score tasks and the agreement task
    ShapeKey("scoring.agreement_with", "scoring", ("agreement_with",)),
    # an external scorer's results are never cached
    ShapeKey("scoring.scorer", "scoring", ("scorer",), shape=is_external),
    # whether the metrics task reads the evaluated model (perplexity under it, its tokenizer
    # for distinct-n) or only the models the metrics section names
    ShapeKey(
        "metrics.perplexity_model / metrics.diversity_tokenizer",
        "metrics_config",
        shape=needs_reference_model,
    ),
)


class EvalOutputs(NamedTuple):
    report: HTML
    metrics: Dataset
    comparison: HTML


def build_eval_pipeline(config: Config, *, local: bool = False):
    """Return the eval ``@dsl.pipeline`` function with ``config``'s values as defaults.

    ``local``: for KFP's local runner (models are loaded, never imported from gs://).
    """
    cluster = config.cluster
    # The baseline may change between runs: the comparison is never cached.
    configure = task_configurer(cluster, uncached_stages(config) | {"compare"})
    second = config.scoring.second_scorer()
    second_scoring = None if second is None else to_params(second)
    evaluate_language = build_language_evaluation(
        configure,
        SINGLE,
        second_scoring,
        config.scoring.agreement_with or "",
        reference_model=config.metrics.needs_reference_model(),
    )
    evaluation = config.evaluation
    defaults = {
        "languages": list(config.data.languages),
        "data": data_params(config),
        "generation": to_params(config.generation),
        "scoring": to_params(config.scoring),
        "metrics": to_params(config.metrics),
        "evaluation": to_params(evaluation),
        "run_info": {"name": config.name, "model": evaluation.model, "pipeline": "eval"},
    }

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Per-language toxicity, fluency and diversity of one model vs a baseline.",
        pipeline_root=cluster.pipeline_root or None,
    )
    def eval_pipeline(
        model: str = evaluation.model,
        model_label: str = evaluation.label,
        prompts_source: str = config.data.prompts,
        languages: list = defaults["languages"],
        data: dict = defaults["data"],
        generation: dict = defaults["generation"],
        scoring: dict = defaults["scoring"],
        metrics_config: dict = defaults["metrics"],
        evaluation: dict = defaults["evaluation"],
        run_info: dict = defaults["run_info"],
    ) -> EvalOutputs:
        loaded = model_artifact(
            configure, model, recipe_source=config.evaluation.model,
            label=config.evaluation.label, local=local,
        )  # fmt: skip
        prompts = configure(
            prepare_prompts(source=prompts_source, languages=languages, data=data),
            "prepare_prompts",
            "prepare prompts",
        )
        with dsl.ParallelFor(languages, parallelism=cluster.parallelism) as language:
            per_language = evaluate_language(
                evaluated_model=loaded,
                prompts=prompts.outputs["prompts"],
                evaluated_label=model_label,
                language=language,
                generation=generation,
                scoring=scoring,
                metrics_config=metrics_config,
            ).set_display_name("evaluate language")
        final = collect_languages(
            configure,
            per_language,
            {SINGLE[0]: config.evaluation.label},
            second=second_scoring is not None,
            threshold=config.metrics.threshold,
            run_info=run_info,
            scoring=scoring,
        )
        check = configure(
            compare_with_baseline(metrics_csv=final.outputs["metrics_csv"], evaluation=evaluation),
            "compare",
            "compare with baseline",
        )
        with dsl.If(check.outputs["Output"] == True):  # noqa: E712  KFP condition syntax
            configure(
                fail_run(comparison=check.outputs["comparison"]), "compare", "fail: regression"
            )
        return EvalOutputs(
            report=final.outputs["html"],
            metrics=final.outputs["metrics_csv"],
            comparison=check.outputs["report"],
        )

    return eval_pipeline
