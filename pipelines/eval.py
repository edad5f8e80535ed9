"""The evaluation pipeline, for schedules: measure one model per language, compare to a baseline.

load model ─┬─ prepare prompts
ParallelFor language: generate → score → metrics
Collected → report → compare with baseline → (regression and fail_on_regression) → fail the run

A nightly schedule (``xdetox schedule --pipeline eval``) that fails when a language regressed
shows up red in the KFP UI, with the regressed languages in the run's Metrics and HTML.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset

from xdetox.components.compare.component import compare_with_baseline, fail_run
from xdetox.components.generate.component import generate
from xdetox.components.load_model.component import load_model
from xdetox.components.metrics.component import model_metrics
from xdetox.components.prepare_prompts.component import prepare_prompts
from xdetox.components.report.component import report
from xdetox.components.score.component import score
from xdetox.config import Config, to_params
from xdetox.pipelines.detox import data_params, uncached_stages
from xdetox.pipelines.resources import task_configurer

PIPELINE_NAME = "xdetox-eval"


def build_eval_pipeline(config: Config):
    """Return the eval ``@dsl.pipeline`` function with ``config``'s values as defaults."""
    cluster = config.cluster
    uncached = uncached_stages(config) | {"compare"}  # the baseline may change between runs
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

    configure = task_configurer(cluster, uncached)

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
    ) -> NamedTuple("Outputs", report=HTML, metrics=Dataset, comparison=HTML):
        loaded = configure(load_model(source=model), "load_model", "load model")
        prompts = configure(
            prepare_prompts(source=prompts_source, languages=languages, data=data),
            "prepare_prompts",
            "prepare prompts",
        )
        with dsl.ParallelFor(languages, parallelism=cluster.parallelism) as language:
            gen = configure(
                generate(
                    model=loaded.outputs["model"],
                    prompts=prompts.outputs["prompts"],
                    language=language,
                    model_label=model_label,
                    generation=generation,
                ),
                "generate",
                "generate",
            )
            scored = configure(
                score(generations=gen.outputs["generations"], scoring=scoring), "score", "score"
            )
            # Perplexity under the evaluated model itself: there is no separate base here.
            per_language = configure(
                model_metrics(
                    scores=scored.outputs["scores"],
                    reference_model=loaded.outputs["model"],
                    language=language,
                    metrics_config=metrics_config,
                ),
                "metrics",
                "metrics",
            )
        final = configure(
            report(
                tables=dsl.Collected(per_language.outputs["table"]),
                run_info=run_info,
                scoring=scoring,
            ),
            "report",
            "report",
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
        outputs = NamedTuple("Outputs", report=HTML, metrics=Dataset, comparison=HTML)  # noqa: UP014
        return outputs(
            report=final.outputs["html"],
            metrics=final.outputs["metrics_csv"],
            comparison=check.outputs["report"],
        )

    return eval_pipeline
