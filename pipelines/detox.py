"""The detox pipeline: one function for KFP's local runner and for a Kubeflow cluster.

base model (load, or import from gs://) ─┬─ prepare preference data (tokenizer only) ── train ─┐
                                         └─ prepare prompts       (merge LoRA, unless full) ──┤
(data.preference: self: pairs sampled from the base model on the prepared prompts instead)
(one train (+ merge) per model of the plan: sft → dpo for sft_dpo, each of training.methods,
 and training.control's run on the reversed pairs; ``pipelines/model_plan.py``)
ParallelFor language: evaluate-language (generate every model → score → metrics, examples)
Collected metrics and examples → report (metrics.csv, report.html, Markdown, aggregate Metrics)
(second scorer: Collected scores → scorer agreement; interpret.run_in_detox: the interpret graph)

Hyperparameters are pipeline parameters (small dicts validated inside each component), with
the recipe's values as defaults; cluster settings are applied at compile time from the config.
The settings in :data:`SHAPE_KEYS` decide the graph itself and are compiled in.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset

from xdetox.components.merge.component import merge
from xdetox.components.prepare_data.component import control_pairs, prepare_data, self_pairs
from xdetox.components.prepare_prompts.component import prepare_prompts
from xdetox.components.train.component import pick_snapshot, train
from xdetox.components.train.snapshot_files import snapshot_name
from xdetox.config import Config, to_params
from xdetox.config.metrics import needs_reference_model
from xdetox.pipelines.interpret import check_interpret_config
from xdetox.pipelines.interpret_graph import build_interpret_graph
from xdetox.pipelines.model_inputs import model_artifact
from xdetox.pipelines.model_plan import (
    comparisons,
    evaluated_labels,
    model_plan,
    primary_label,
    snapshot_fractions,
)
from xdetox.pipelines.per_language import build_language_evaluation, collect_languages
from xdetox.pipelines.recipe_params import (
    check_self_pairs,
    data_params,
    is_external,
    is_self_pairs,
    uncached_stages,
)
from xdetox.pipelines.resources import task_configurer
from xdetox.pipelines.shape_keys import ShapeKey, is_gcs
from xdetox.records import BASE_LABEL, snapshot_label

PIPELINE_NAME = "xdetox-detox"

# The recipe settings the detox graph depends on (compiled in; ``--param`` cannot change them).
SHAPE_KEYS = (
    # the trainer, whether preference pairs are prepared, the tuned model's label
    ShapeKey("training.method", "training", ("method",)),
    # the trained models: one train task (and evaluation) per method
    ShapeKey("training.methods", "training", ("methods",)),
    # a control arm: reversed pairs, one more train task and model
    ShapeKey("training.control", "training", ("control",)),
    # snapshots part-way through training, each taken out, merged and evaluated
    ShapeKey("training.dose_response", "training", ("dose_response",)),
    # full fine-tuning writes the whole model: no merge task
    ShapeKey("training.mode", "training", ("mode",), shape=lambda mode: mode == "full"),
    # a second scorer adds score tasks and the agreement tasks
    ShapeKey("scoring.agreement_with", "scoring", ("agreement_with",)),
    # an external scorer's results are never cached
    ShapeKey("scoring.scorer", "scoring", ("scorer",), shape=is_external),
    # whether the metrics task reads the base model (perplexity under it, its tokenizer for
    # distinct-n) or only the models the metrics section names
    ShapeKey(
        "metrics.perplexity_model / metrics.diversity_tokenizer",
        "metrics_config",
        shape=needs_reference_model,
    ),
    # self: a task samples pairs from the base model instead of reading them (prepare_data)
    ShapeKey("data.preference", "preference_data", shape=is_self_pairs),
    # an external scorer of those samples is never cached
    ShapeKey("data.self_pairs.scorer", "data", ("self_pairs", "scorer"), shape=is_external),
    # a gs:// base model is imported, any other is loaded
    ShapeKey("model.base", "base_model", shape=is_gcs),
    # the interpret graph after the report (its settings are compiled in, not parameters)
    ShapeKey("interpret.run_in_detox"),
)


class DetoxOutputs(NamedTuple):
    report: HTML
    metrics: Dataset


def merges_adapter(config: Config) -> bool:
    """LoRA and QLoRA train an adapter, merged into the base for vLLM; full tuning does not."""
    return config.training.mode != "full"


def build_detox_pipeline(config: Config, *, local: bool = False):
    """Return the ``@dsl.pipeline`` function with ``config``'s values as parameter defaults.

    ``local``: for KFP's local runner (models are loaded, never imported from gs://).
    """
    check_self_pairs(config)
    cluster = config.cluster
    configure = task_configurer(cluster, uncached_stages(config))
    second = config.scoring.second_scorer()
    second_scoring = None if second is None else to_params(second)
    plan = model_plan(config)
    roles = evaluated_labels(config, plan)  # the labels the models' rows carry
    tuned_label = primary_label(config)
    needs_pairs = any(step.pairs for step in plan)
    evaluate_language = build_language_evaluation(
        configure,
        roles,
        second_scoring,
        config.scoring.agreement_with or "",
        reference_model=config.metrics.needs_reference_model(),
        comparisons=comparisons(plan),
    )
    interpret_graph = _interpret_graph(config, configure)
    # KFP reads parameter defaults from the signature: the recipe's values go there.
    defaults = {
        "languages": list(config.data.languages),
        "data": data_params(config),
        "training": to_params(config.training),
        "rl": to_params(config.rl),
        "generation": to_params(config.generation),
        "scoring": to_params(config.scoring),
        "metrics": to_params(config.metrics),
        "run_info": {"name": config.name, "base_model": config.model.base},
    }

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Preference tuning (DPO, SFT→DPO, PPO, RLOO, GRPO) and per-language "
        "toxicity, fluency and diversity.",
        pipeline_root=cluster.pipeline_root or None,
    )
    def detox_pipeline(
        base_model: str = config.model.base,
        preference_data: str = config.data.preference,
        prompts_source: str = config.data.prompts,
        languages: list = defaults["languages"],
        data: dict = defaults["data"],
        training: dict = defaults["training"],
        rl: dict = defaults["rl"],
        generation: dict = defaults["generation"],
        scoring: dict = defaults["scoring"],
        metrics_config: dict = defaults["metrics"],
        run_info: dict = defaults["run_info"],
    ) -> DetoxOutputs:
        base = model_artifact(
            configure, base_model, recipe_source=config.model.base, label=BASE_LABEL, local=local
        )
        prompts = configure(
            prepare_prompts(source=prompts_source, languages=languages, data=data),
            "prepare_prompts",
            "prepare prompts",
        )
        pairs = None
        if needs_pairs and is_self_pairs(config.data.preference):
            pairs = configure(
                self_pairs(base_model=base, prompts=prompts.outputs["prompts"], data=data,
                           generation=generation, scoring=scoring),
                "self_pairs",
                "make pairs from base samples",
            ).outputs["pairs"]  # fmt: skip
        elif needs_pairs:
            # The length filter needs only the tokenizer: read from the source, not the model.
            pairs = configure(
                prepare_data(source=preference_data, data=data, tokenizer_source=base_model),
                "prepare_data",
                "prepare preference data",
            ).outputs["pairs"]
        pair_sets = {"pairs": pairs}
        if config.training.control != "none":
            pair_sets["control"] = configure(
                control_pairs(pairs=pairs, mode=config.training.control,
                              seed=config.training.seed),
                "prepare_data",
                f"control pairs ({config.training.control})",
            ).outputs["control_pairs"]  # fmt: skip
        models = {BASE_LABEL: base}
        for step in plan:
            train_inputs = {"pairs": pair_sets[step.pairs]} if step.pairs else {}
            fractions = snapshot_fractions(config, step)
            task = configure(
                train(base_model=models[step.start], training=training, rl=rl, scoring=scoring,
                      method=step.method, label=step.label, save_snapshots=bool(fractions),
                      **train_inputs),
                "train",
                f"train ({step.label})",
            )  # fmt: skip
            outputs = {step.label: task.outputs["tuned"]}
            for fraction in fractions:  # training.dose_response: the model part-way through
                label = snapshot_label(step.label, fraction)
                outputs[label] = configure(
                    pick_snapshot(snapshots=task.outputs["snapshots"],
                                  name=snapshot_name(fraction), label=label,
                                  mode=config.training.mode),
                    "load_model",
                    f"snapshot ({label})",
                ).outputs["model"]  # fmt: skip
            for label, trained in outputs.items():
                if merges_adapter(config):  # onto the model it was trained from (sft_dpo: sft)
                    trained = configure(
                        merge(base_model=models[step.start], adapter=trained),
                        "merge",
                        f"merge LoRA ({label})",
                    ).outputs["merged"]
                models[label] = trained
        tuned = models[tuned_label]
        with dsl.ParallelFor(languages, parallelism=cluster.parallelism) as language:
            per_language = evaluate_language(
                prompts=prompts.outputs["prompts"],
                language=language,
                generation=generation,
                scoring=scoring,
                metrics_config=metrics_config,
                **{f"{role}_model": models[role] for role in roles},
                **{f"{role}_label": role for role in roles},
            ).set_display_name("evaluate language")
        final = collect_languages(
            configure,
            per_language,
            {role: role for role in roles},
            second=second_scoring is not None,
            threshold=config.metrics.threshold,
            run_info=run_info,
            scoring=scoring,
        )
        if interpret_graph is not None:
            ic = config.interpret
            interpret_graph(
                base_model=base,
                tuned_model=tuned,
                tuned_label=tuned_label,
                prompts=prompts.outputs["prompts"],
                metrics_table=final.outputs["metrics_csv"],
                languages=languages,
                probe_data=ic.probe_data,
                probe_test_data=ic.probe_test_data or "",
                parallel_data=ic.parallel_data,
                probe_config=to_params(ic.probe),
                value_vector_config=to_params(ic.value_vectors),
                intervention_config=to_params(ic.intervention),
                activation_config=to_params(ic.activations),
                alignment_config=to_params(ic.alignment),
                generation=generation,
                scoring=scoring,
                run_info=run_info,
            ).set_display_name("interpret")
        return DetoxOutputs(report=final.outputs["html"], metrics=final.outputs["metrics_csv"])

    return detox_pipeline


def _interpret_graph(config: Config, configure):
    """The interpret graph for ``interpret.run_in_detox``, fed by this run's models and
    metrics (so its settings are compiled in), or None."""
    if not config.interpret.run_in_detox:
        return None
    check_interpret_config(config)
    return build_interpret_graph(
        configure, tuned=True, metrics="table", parallelism=config.cluster.parallelism
    )
