"""One language's evaluation, shared by the detox and eval pipelines.

generate (per model) → score (→ second scorer) → metrics
                                                 → examples (the texts behind the numbers)

It is one nested ``@dsl.pipeline`` ("pipelines as components": a pipeline can be called inside
another like a component, https://www.kubeflow.org/docs/components/pipelines/user-guides/components/compose-components-into-pipelines/),
called once per iteration of the parent's ``dsl.ParallelFor`` over languages. The parent
collects its outputs across languages with ``dsl.Collected`` (report, scorer agreement).
Besides the metrics table, each language outputs a small examples file (its most toxic prompts
with every model's continuations, bounded in size), so the report can show texts without the
whole score files travelling to it.

The detox pipeline evaluates the base and every model it trains (sft, dpo, ppo, control, ...;
metrics compare each with the base, paired per prompt, and some with a second model), the eval
pipeline one (metrics of that model alone). Each model's scores join a gathered folder (one
small task per extra model: a KFP component's inputs are fixed, and a list of artifacts can only
come from a loop), which the metrics and examples tasks read. The models and the second scorer
are compile-time shape: they decide the sub-pipeline's inputs and outputs.
"""

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Model

from xdetox.components.agreement.component import scorer_agreement
from xdetox.components.generate.component import generate
from xdetox.components.metrics.component import language_metrics
from xdetox.components.report.component import language_examples, report
from xdetox.components.score.component import gather_scores, score

Configure = Callable[[dsl.PipelineTask, str, str], dsl.PipelineTask]
SUB_PIPELINE_NAME = "evaluate-language"
# The eval pipeline's one model. The detox pipeline's roles are its models' labels: base first,
# then every trained model (``pipelines/model_plan.py``).
SINGLE = ("evaluated",)


def output_names(roles: tuple[str, ...], second: bool) -> list[str]:
    """The sub-pipeline's outputs: the metrics table, the examples, and with a second scorer
    each model's scores by both scorers (the parent's agreement task collects them over
    languages)."""
    names = ["table", "examples"]
    if second:
        for role in roles:
            names += [f"{role}_scores", f"{role}_second_scores"]
    return names


def _check_roles(roles: tuple[str, ...]) -> None:
    if not roles or len(set(roles)) != len(roles) or not all(r.isidentifier() for r in roles):
        raise ValueError(f"roles must be distinct identifiers, not {roles}")


def build_language_evaluation(
    configure: Configure,
    roles: tuple[str, ...],
    second_scoring: dict | None,
    second_name: str = "",
    reference_model: bool = True,
    comparisons: dict[str, str] | None = None,
):
    """The nested pipeline evaluating ``roles``' models in one language.

    Inputs: ``<role>_model`` (Model) and ``<role>_label`` (str) per role, ``prompts``
    (Dataset), ``language``, and the ``generation``, ``scoring`` and ``metrics_config`` dicts.
    The first role is the reference: the base model (detox), whose most toxic prompts the
    examples show and under which perplexity is measured, or the one evaluated model (eval).
    ``second_scoring``: the second scorer's scoring dict (compiled in), or None.
    ``reference_model``: whether metrics read the first role's model, for perplexity or the
    distinct-n tokenizer (:meth:`MetricsConfig.needs_reference_model`); when not, no model
    travels to the metrics task (on a cluster, one whole-model download fewer per language).
    ``comparisons``: ``{label: other label}`` measured against each other as well as the base.
    """
    _check_roles(roles)
    kinds: list[tuple[str, Any]] = [(f"{role}_model", Input[Model]) for role in roles]
    kinds += [("prompts", Input[Dataset])]
    kinds += [(f"{role}_label", str) for role in roles]
    kinds += [("language", str), ("generation", dict), ("scoring", dict), ("metrics_config", dict)]
    params = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind)
        for name, kind in kinds
    ]
    names = [p.name for p in params]
    outputs = output_names(roles, second_scoring is not None)
    Outputs = NamedTuple("Outputs", [(name, Dataset) for name in outputs])

    def evaluate_language(*args):
        # KFP calls the pipeline function positionally, one channel per parameter of the
        # signature set below.
        p: dict[str, Any] = dict(zip(names, args, strict=True))
        out: dict[str, Any] = {}
        gathered = None  # every model's scores so far, in role order
        for role in roles:
            suffix = "" if len(roles) == 1 else f" ({role})"
            gen = configure(
                generate(
                    model=p[f"{role}_model"],
                    prompts=p["prompts"],
                    language=p["language"],
                    model_label=p[f"{role}_label"],
                    generation=p["generation"],
                ),
                "generate",
                f"generate{suffix}",
            )
            generations = gen.outputs["generations"]
            scored = configure(
                score(generations=generations, scoring=p["scoring"]), "score", f"score{suffix}"
            ).outputs["scores"]
            if second_scoring is not None:
                rescored = configure(
                    score(generations=generations, scoring=second_scoring),
                    "score",
                    f"score{suffix} with {second_name}",
                )
                out[f"{role}_scores"] = scored
                out[f"{role}_second_scores"] = rescored.outputs["scores"]
            if gathered is None:
                gathered = scored
            else:
                gathered = configure(
                    gather_scores(scores=scored, earlier=gathered), "score", f"gather{suffix}"
                ).outputs["gathered"]
        # Perplexity under the base model (detox), or under the evaluated model itself (eval:
        # there is no separate base there).
        reference = {"reference_model": p[f"{roles[0]}_model"]} if reference_model else {}
        metrics = language_metrics(
            scores=gathered,
            language=p["language"],
            metrics_config=p["metrics_config"],
            comparisons=dict(comparisons or {}),
            **reference,
        )
        out["table"] = configure(metrics, "metrics", "metrics").outputs["table"]
        # The first role's most toxic prompts (base, or the evaluated model), every role's
        # continuations beside them; scored by the primary scorer, as the metrics are.
        examples = language_examples(scores=gathered, language=p["language"])
        out["examples"] = configure(examples, "report", "examples").outputs["examples"]
        return Outputs(**out)

    evaluate_language.__signature__ = inspect.Signature(params, return_annotation=Outputs)
    evaluate_language.__name__ = "evaluate_language"
    return dsl.pipeline(
        name=SUB_PIPELINE_NAME,
        description="One language: generate, score (and rescore), metrics.",
    )(evaluate_language)


def collect_languages(
    configure: Configure,
    per_language: dsl.PipelineTask,
    labels: dict[str, str],
    *,
    second: bool,
    threshold: float,
    run_info: Any,
    scoring: Any,
) -> dsl.PipelineTask:
    """After the ParallelFor: the report over every language's metrics table and examples
    and, with a second scorer, one scorer-agreement task per model over every language's two
    scorings (e.g. a classifier against Perspective before the API's sunset).

    ``labels`` maps each role of the sub-pipeline to the model label shown to people.
    Returns the report task (outputs ``html``, ``metrics_csv``, ``markdown``).
    """
    final = configure(
        report(
            tables=dsl.Collected(per_language.outputs["table"]),
            examples=dsl.Collected(per_language.outputs["examples"]),
            run_info=run_info,
            scoring=scoring,
        ),
        "report",
        "report",
    )
    if second:
        for role, label in labels.items():
            suffix = "" if len(labels) == 1 else f" ({label})"
            configure(
                scorer_agreement(
                    scores_a=dsl.Collected(per_language.outputs[f"{role}_scores"]),
                    scores_b=dsl.Collected(per_language.outputs[f"{role}_second_scores"]),
                    attribute="TOXICITY",
                    threshold=threshold,
                ),
                "agreement",
                f"scorer agreement{suffix}",
            )
    return final
