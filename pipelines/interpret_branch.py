"""The optional interpretability branch of the detox pipeline (``interpret.run_in_detox``).

The same components as the ``interpret`` pipeline, fed by the detox run's own artifacts: the
base model, the merged tuned model and the run's metrics (for the alignment correlation).
"""

from collections.abc import Callable

from kfp import dsl

from xdetox.components.interpret.component import (
    combine_interventions,
    find_value_vectors,
    interpret_report,
    intervene,
    measure_activations,
    measure_alignment,
    train_probe,
)
from xdetox.config import Config, to_params
from xdetox.pipelines.interpret import check_interpret_config
from xdetox.records import BASE_LABEL

Configure = Callable[[dsl.PipelineTask, str, str], dsl.PipelineTask]


def add_interpret_branch(
    config: Config,
    configure: Configure,
    *,
    base_model,
    tuned_model,
    tuned_label: str,
    prompts,
    metrics_csv,
    languages,
    generation,
    scoring,
    run_info,
) -> dsl.PipelineTask:
    """Add probe → value vectors → intervention → activations → alignment → report tasks."""
    check_interpret_config(config)
    ic = config.interpret
    probe = configure(
        train_probe(
            model=base_model,
            data_source=ic.probe_data,
            probe_config=to_params(ic.probe),
            test_source=ic.probe_test_data or "",
        ),
        "probe",
        "toxicity probe",
    )
    vectors = configure(
        find_value_vectors(
            model=base_model,
            probe=probe.outputs["probe"],
            prompts=prompts,
            value_vector_config=to_params(ic.value_vectors),
        ),
        "value_vectors",
        "toxic value vectors",
    )
    with dsl.ParallelFor(languages, parallelism=config.cluster.parallelism) as language:
        sweep = configure(
            intervene(
                model=base_model,
                neurons=vectors.outputs["table"],
                prompts=prompts,
                language=language,
                intervention_config=to_params(ic.intervention),
                generation=generation,
                scoring=scoring,
            ),
            "intervene",
            "intervention sweep",
        )
    combined = configure(
        combine_interventions(parts=dsl.Collected(sweep.outputs["results"])),
        "interpret_report",
        "combine sweeps",
    )
    activations = configure(
        measure_activations(
            base_model=base_model,
            tuned_model=tuned_model,
            neurons=vectors.outputs["table"],
            prompts=prompts,
            activation_config=to_params(ic.activations),
            base_label=BASE_LABEL,
            tuned_label=tuned_label,
        ),
        "activations",
        "activations before/after",
    )
    alignment = configure(
        measure_alignment(
            model=base_model,
            pairs_source=ic.parallel_data,
            alignment_config=to_params(ic.alignment),
            metrics_table=metrics_csv,
        ),
        "alignment",
        "cross-lingual alignment",
    )
    return configure(
        interpret_report(
            probe=probe.outputs["probe"],
            value_vectors=vectors.outputs["results"],
            intervention=combined.outputs["results"],
            activations=activations.outputs["results"],
            alignment=alignment.outputs["results"],
            run_info=run_info,
        ),
        "interpret_report",
        "interpret report",
    )
