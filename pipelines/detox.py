"""The detox pipeline: one function for KFP's local runner and for a Kubeflow cluster.

load base model ─┬─ prepare preference data ── train (DPO…) ── merge ─┐
                 └─ prepare prompts ─────────────────────────┤
ParallelFor language: generate(base), generate(tuned) → score each → metrics(base vs tuned)
Collected metrics → report (metrics.csv, report.html, Markdown, aggregate Metrics)

Hyperparameters are pipeline parameters (small dicts validated inside each component), with
the recipe's values as defaults; cluster settings are applied at compile time from the config.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset

from xdetox.components.agreement.component import scorer_agreement
from xdetox.components.generate.component import generate
from xdetox.components.load_model.component import load_model
from xdetox.components.merge.component import merge
from xdetox.components.metrics.component import language_metrics
from xdetox.components.prepare_data.component import prepare_data
from xdetox.components.prepare_prompts.component import prepare_prompts
from xdetox.components.report.component import report
from xdetox.components.score.component import score
from xdetox.components.train.component import train
from xdetox.config import Config, to_params
from xdetox.pipelines.resources import task_configurer
from xdetox.records import BASE_LABEL

PIPELINE_NAME = "xdetox-detox"
# Scorers that call an external service can answer differently over time (and the Perspective
# API stops serving after 2026): their results are not cached. Everything else here is
# deterministic given its inputs (generation is seeded per sample), so KFP may reuse it.
_EXTERNAL_SCORERS = {"perspective"}


def uncached_stages(config: Config) -> set[str]:
    scorers = {config.scoring.scorer, config.scoring.agreement_with}
    return {"score"} if scorers & _EXTERNAL_SCORERS else set()


def data_params(config: Config) -> dict:
    # Sources and languages are top-level pipeline parameters; the rest travels as one dict.
    params = to_params(config.data)
    for key in ("preference", "prompts", "languages"):
        params.pop(key)
    return params


def build_detox_pipeline(config: Config):
    """Return the ``@dsl.pipeline`` function with ``config``'s values as parameter defaults."""
    cluster = config.cluster
    uncached = uncached_stages(config)
    second = config.scoring.second_scorer()
    second_scoring = None if second is None else to_params(second)
    tuned_label = config.training.method  # the label the tuned model's rows carry
    online = config.training.method in ("ppo", "rloo", "grpo")
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

    configure = task_configurer(cluster, uncached)

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
    ) -> NamedTuple("Outputs", report=HTML, metrics=Dataset):

        base = configure(load_model(source=base_model), "load_model", "load base model")
        if online:  # PPO, RLOO, GRPO learn from prompts and a reward, not preference pairs
            pairs = None
        else:
            pairs = configure(
                prepare_data(
                    source=preference_data, data=data, tokenizer_model=base.outputs["model"]
                ),
                "prepare_data",
                "prepare preference data",
            )
        prompts = configure(
            prepare_prompts(source=prompts_source, languages=languages, data=data),
            "prepare_prompts",
            "prepare prompts",
        )
        train_inputs = {} if pairs is None else {"pairs": pairs.outputs["pairs"]}
        tuned = configure(
            train(
                base_model=base.outputs["model"],
                training=training,
                rl=rl,
                scoring=scoring,
                **train_inputs,
            ),
            "train",
            f"train ({tuned_label})",
        )
        merged = configure(
            merge(base_model=base.outputs["model"], adapter=tuned.outputs["tuned"]),
            "merge",
            "merge LoRA",
        )
        with dsl.ParallelFor(languages, parallelism=cluster.parallelism) as language:
            scored, rescored = {}, {}
            for label, model in (
                (BASE_LABEL, base.outputs["model"]),
                (tuned_label, merged.outputs["merged"]),
            ):
                gen = configure(
                    generate(
                        model=model,
                        prompts=prompts.outputs["prompts"],
                        language=language,
                        model_label=label,
                        generation=generation,
                    ),
                    "generate",
                    f"generate ({label})",
                )
                scored[label] = configure(
                    score(generations=gen.outputs["generations"], scoring=scoring),
                    "score",
                    f"score ({label})",
                )
                if second_scoring is not None:
                    rescored[label] = configure(
                        score(generations=gen.outputs["generations"], scoring=second_scoring),
                        "score",
                        f"score ({label}, {config.scoring.agreement_with})",
                    )
            per_language = configure(
                language_metrics(
                    base_scores=scored[BASE_LABEL].outputs["scores"],
                    tuned_scores=scored[tuned_label].outputs["scores"],
                    reference_model=base.outputs["model"],
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
        for label, second in rescored.items():
            # How far the second scorer agrees with the first, per language (e.g. a classifier
            # against Perspective before the API's sunset).
            configure(
                scorer_agreement(
                    scores_a=dsl.Collected(scored[label].outputs["scores"]),
                    scores_b=dsl.Collected(second.outputs["scores"]),
                    attribute="TOXICITY",
                    threshold=config.metrics.threshold,
                ),
                "agreement",
                f"scorer agreement ({label})",
            )
        if config.interpret.run_in_detox:
            from xdetox.pipelines.interpret_branch import add_interpret_branch

            add_interpret_branch(
                config,
                configure,
                base_model=base.outputs["model"],
                tuned_model=merged.outputs["merged"],
                tuned_label=tuned_label,
                prompts=prompts.outputs["prompts"],
                metrics_csv=final.outputs["metrics_csv"],
                languages=languages,
                generation=generation,
                scoring=scoring,
                run_info=run_info,
            )
        outputs = NamedTuple("Outputs", report=HTML, metrics=Dataset)  # noqa: UP014
        return outputs(report=final.outputs["html"], metrics=final.outputs["metrics_csv"])

    return detox_pipeline
