"""The interpretability graph, shared by the ``interpret`` pipeline and the detox pipeline's
optional branch (``interpret.run_in_detox``):

probe (toxic vs non-toxic) → toxic value vectors (English prompts)
  → ParallelFor language: intervention sweep (offsets on the neurons, generate, score)
  → the sweeps joined into one table and plot
  → the neurons' activations per language: base (and tuned)
  → cross-lingual alignment of the base model (correlated with the toxicity drop, if given)
  → report (HTML with every plot, Markdown)

XG's analysis (Li, Yong & Bach 2024, "Preference Tuning For Toxicity Mitigation Generalizes Across
Languages"). One nested ``@dsl.pipeline`` ("pipelines as components",
https://www.kubeflow.org/docs/components/pipelines/user-guides/components/compose-components-into-pipelines/)
with its own ``dsl.ParallelFor``; KFP's local runner runs both (kfp 2.17's DAG orchestrator).

Compile-time shape: whether a tuned model is compared with the base (``tuned``), and whether
the metrics table for the alignment correlation arrives as an artifact of the same run
(``metrics="table"``: the detox run's report) or as a path/``gs://`` string (``"source"``:
the interpret pipeline's ``metrics_csv`` parameter, "" for none). The caller prepares the
models and prompts.
"""

import inspect
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Model

from xdetox.components.interpret.component import (
    combine_interventions,
    find_value_vectors,
    interpret_report,
    intervene,
    measure_activations,
    measure_alignment,
    train_probe,
)
from xdetox.records import BASE_LABEL

Configure = Callable[[dsl.PipelineTask, str, str], dsl.PipelineTask]
SUB_PIPELINE_NAME = "interpret"
# The dict parameters the graph takes, one per stage (validated inside each component).
STAGE_PARAMETERS = (
    "probe_config",
    "value_vector_config",
    "intervention_config",
    "activation_config",
    "alignment_config",
    "generation",
    "scoring",
    "run_info",
)


class InterpretOutputs(NamedTuple):
    report: HTML
    markdown: Markdown


def graph_parameters(tuned: bool, metrics: Literal["table", "source"]) -> list[inspect.Parameter]:
    """The sub-pipeline's inputs, in order."""
    P = inspect.Parameter
    kinds: list[tuple[str, Any]] = [("base_model", Input[Model])]
    if tuned:
        kinds += [("tuned_model", Input[Model]), ("tuned_label", str)]
    kinds += [("prompts", Input[Dataset])]
    kinds += [("metrics_table", Input[Dataset])] if metrics == "table" else [
        ("metrics_source", str)
    ]
    kinds += [("languages", list), ("probe_data", str), ("probe_test_data", str)]
    kinds += [("parallel_data", str)]
    kinds += [(name, dict) for name in STAGE_PARAMETERS]
    return [P(name, P.POSITIONAL_OR_KEYWORD, annotation=kind) for name, kind in kinds]


def build_interpret_graph(
    configure: Configure,
    *,
    tuned: bool,
    metrics: Literal["table", "source"],
    parallelism: int,
):
    """The nested interpret pipeline; see the module docstring for its inputs."""
    params = graph_parameters(tuned, metrics)
    names = [p.name for p in params]

    def interpret_graph(*args):
        p: dict[str, Any] = dict(zip(names, args, strict=True))
        base = p["base_model"]
        probe = configure(
            train_probe(
                model=base,
                data_source=p["probe_data"],
                probe_config=p["probe_config"],
                test_source=p["probe_test_data"],
            ),
            "probe",
            "toxicity probe",
        )
        vectors = configure(
            find_value_vectors(
                model=base,
                probe=probe.outputs["probe"],
                prompts=p["prompts"],
                value_vector_config=p["value_vector_config"],
            ),
            "value_vectors",
            "toxic value vectors",
        )
        with dsl.ParallelFor(p["languages"], parallelism=parallelism) as language:
            sweep = configure(
                intervene(
                    model=base,
                    neurons=vectors.outputs["table"],
                    prompts=p["prompts"],
                    language=language,
                    intervention_config=p["intervention_config"],
                    generation=p["generation"],
                    scoring=p["scoring"],
                ),
                "intervene",
                "intervention sweep",
            )
        combined = configure(
            combine_interventions(parts=dsl.Collected(sweep.outputs["results"])),
            "interpret_report",
            "combine sweeps",
        )
        second = {"tuned_model": p["tuned_model"], "tuned_label": p["tuned_label"]} if tuned else {}
        activations = configure(
            measure_activations(
                base_model=base,
                neurons=vectors.outputs["table"],
                prompts=p["prompts"],
                activation_config=p["activation_config"],
                base_label=BASE_LABEL,
                **second,
            ),
            "activations",
            "activations before/after" if tuned else "activations (base)",
        )
        drop = (
            {"metrics_table": p["metrics_table"]}
            if metrics == "table"
            else {"metrics_source": p["metrics_source"]}
        )
        alignment = configure(
            measure_alignment(
                model=base,
                pairs_source=p["parallel_data"],
                alignment_config=p["alignment_config"],
                **drop,
            ),
            "alignment",
            "cross-lingual alignment",
        )
        report = configure(
            interpret_report(
                probe=probe.outputs["probe"],
                value_vectors=vectors.outputs["results"],
                intervention=combined.outputs["results"],
                activations=activations.outputs["results"],
                alignment=alignment.outputs["results"],
                run_info=p["run_info"],
            ),
            "interpret_report",
            "interpret report",
        )
        return InterpretOutputs(report=report.outputs["html"], markdown=report.outputs["markdown"])

    interpret_graph.__signature__ = inspect.Signature(params, return_annotation=InterpretOutputs)
    interpret_graph.__name__ = "interpret_graph"
    return dsl.pipeline(
        name=SUB_PIPELINE_NAME,
        description="Probe, toxic value vectors, interventions, activations, alignment, report.",
    )(interpret_graph)
