"""The interpret pipeline: why does English detoxification carry over to other languages?

load base model, prepare prompts
  → probe (toxic vs non-toxic, Jigsaw format) → toxic value vectors (English prompts)
  → ParallelFor language: intervention sweep (offsets on the neurons, generate, score)
  → Collected sweeps joined into one table and plot
  → activations of the neurons per language: base (and tuned, if the recipe names one)
  → cross-lingual alignment of the base model (correlated with the toxicity drop, if given)
  → report (HTML with every plot, Markdown)

XG §5 (REFERENCE.md). Hyperparameters are pipeline parameters (one dict per stage, validated
inside each component) with the recipe's values as defaults; cluster settings apply at compile
time. Whether a tuned model is compared with the base is decided at compile time by
``interpret.tuned_model``: KFP's local runner cannot join the outputs of conditional branches
(``dsl.OneOf``), so the pipeline has a ``tuned_model`` parameter only when the recipe names one.
"""

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Markdown
from pydantic import BaseModel

from xdetox.components.interpret.component import (
    combine_interventions,
    find_value_vectors,
    interpret_report,
    intervene,
    measure_activations,
    measure_alignment,
    train_probe,
)
from xdetox.components.load_model.component import load_model
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
from xdetox.errors import ConfigError, XdetoxError
from xdetox.pipelines.local_run import (
    executor_outputs,
    first_line,
    init_local_runner,
    link_dir,
    link_file,
)
from xdetox.pipelines.resources import task_configurer
from xdetox.records import BASE_LABEL

PIPELINE_NAME = "xdetox-interpret"
# Scorers that call an external service may answer differently over time: not cached.
_EXTERNAL_SCORERS = {"perspective"}


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


class InterpretOutputs(NamedTuple):
    report: HTML
    markdown: Markdown


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


def _data_params(config: Config) -> dict:
    # Source and languages are top-level pipeline parameters; the rest travels as one dict.
    params = to_params(config.data)
    for key in ("preference", "prompts", "languages"):
        params.pop(key)
    return params


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
            "data": (dict, _data_params(config)),
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


def build_interpret_pipeline(config: Config):
    """Return the ``@dsl.pipeline`` function with ``config``'s values as parameter defaults."""
    check_interpret_config(config)
    cluster = config.cluster
    uncached = {"intervene"} if config.scoring.scorer in _EXTERNAL_SCORERS else set()
    tuned_label = config.interpret.tuned_label
    params = pipeline_defaults(config)
    names = list(params)

    configure = task_configurer(cluster, uncached)

    def interpret_pipeline(*args):
        # KFP calls the pipeline function positionally with one channel per parameter of its
        # signature (set below), so the optional ``tuned_model`` parameter needs no second copy.
        p = dict(zip(names, args, strict=True))
        base = configure(load_model(source=p["base_model"]), "load_model", "load base model")
        prompts = configure(
            prepare_prompts(source=p["prompts_source"], languages=p["languages"], data=p["data"]),
            "prepare_prompts",
            "prepare prompts",
        )
        probe = configure(
            train_probe(
                model=base.outputs["model"],
                data_source=p["probe_data"],
                probe_config=p["probe_config"],
                test_source=p["probe_test_data"],
            ),
            "probe",
            "toxicity probe",
        )
        vectors = configure(
            find_value_vectors(
                model=base.outputs["model"],
                probe=probe.outputs["probe"],
                prompts=prompts.outputs["prompts"],
                value_vector_config=p["value_vector_config"],
            ),
            "value_vectors",
            "toxic value vectors",
        )
        with dsl.ParallelFor(p["languages"], parallelism=cluster.parallelism) as language:
            sweep = configure(
                intervene(
                    model=base.outputs["model"],
                    neurons=vectors.outputs["table"],
                    prompts=prompts.outputs["prompts"],
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
        models: dict[str, Any] = {}
        if "tuned_model" in p:
            tuned = configure(load_model(source=p["tuned_model"]), "load_model", "load tuned model")
            models = {"tuned_model": tuned.outputs["model"], "tuned_label": tuned_label}
        activations = configure(
            measure_activations(
                base_model=base.outputs["model"],
                neurons=vectors.outputs["table"],
                prompts=prompts.outputs["prompts"],
                activation_config=p["activation_config"],
                base_label=BASE_LABEL,
                **models,
            ),
            "activations",
            "activations before/after" if models else "activations (base)",
        )
        alignment = configure(
            measure_alignment(
                model=base.outputs["model"],
                pairs_source=p["parallel_data"],
                alignment_config=p["alignment_config"],
                metrics_source=p["metrics_csv"],
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
            "report",
        )
        return InterpretOutputs(report=report.outputs["html"], markdown=report.outputs["markdown"])

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


# --- Local runs -------------------------------------------------------------------------------

# KFP task name → folder name in the run folder (the stage's results).
STAGE_FOLDERS = {
    ("train-probe", "probe"): "probe",
    ("find-value-vectors", "results"): "value_vectors",
    ("combine-interventions", "results"): "intervention",
    ("measure-activations", "results"): "activations",
    ("measure-alignment", "results"): "alignment",
}
REPORT_FILES = {("interpret-report", "html"): "report.html",
                ("interpret-report", "markdown"): "report.md"}  # fmt: skip
MODEL_FOLDERS = {"load-model": "base", "load-model-2": "tuned"}


@dataclass
class InterpretRun:
    run_dir: Path
    report: Path
    markdown: Path
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)


def organise_interpret_run(run_dir: Path, kfp_root: Path) -> dict[str, Path]:
    """Link the report and each stage's folder from KFP's task folders into ``run_dir``."""
    files: dict[str, Path] = {}
    for task, output, artifact in executor_outputs(kfp_root):
        uri = Path(artifact.get("uri", ""))
        if (task, output) in REPORT_FILES and uri.is_file():
            dest = run_dir / REPORT_FILES[(task, output)]
            link_file(uri, dest)
        elif (task, output) in STAGE_FOLDERS and uri.is_dir():
            dest = run_dir / STAGE_FOLDERS[(task, output)]
            link_dir(uri, dest)
        elif task in MODEL_FOLDERS and output == "model" and uri.is_dir():
            dest = run_dir / "models" / MODEL_FOLDERS[task]
            link_dir(uri, dest)
        else:
            continue
        files[str(dest.relative_to(run_dir))] = dest
    return files


def run_interpret_local(config: Config, run_dir: str | Path) -> InterpretRun:
    """Run the interpret pipeline with KFP's SubprocessRunner in this interpreter (as
    :func:`xdetox.pipelines.local_run.run_local` runs the detox pipeline) and lay out ``run_dir``:
    ``report.html``, ``report.md``, one folder per stage, ``models/``, and ``kfp/``."""
    pipeline = build_interpret_pipeline(config)  # config errors before anything is written
    run_dir = Path(run_dir).resolve()
    kfp_root = init_local_runner(run_dir)
    start = time.monotonic()
    try:
        pipeline()
    except RuntimeError as exc:  # kfp.local: a task failed; its log went to the console
        organise_interpret_run(run_dir, kfp_root)
        raise XdetoxError(
            f"local interpret run failed: {first_line(exc)}; task folders in {kfp_root}"
        ) from None
    seconds = time.monotonic() - start
    files = organise_interpret_run(run_dir, kfp_root)
    return InterpretRun(run_dir, run_dir / "report.html", run_dir / "report.md", seconds, files)
