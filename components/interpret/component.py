"""KFP components of the interpretability stages; thin calls into plain modules.

Every stage writes its whole output folder (CSVs, plots, ``*_summary.json``) into a ``results``
artifact (the probe: into its ``probe`` Model) that later stages and the report read, plus
artifacts the KFP UI shows: Metrics (run comparison), ClassificationMetrics (the probe's ROC
curve and confusion matrix), HTML (the stage's plots and tables) and, for the value vectors, the
neuron table itself as a CSV Dataset.

Model stages run on the training image (CUDA torch + transformers); combining and reporting
need only the CPU image.
"""

from typing import List  # noqa: UP035  KFP's signature parser needs typing.List

from kfp import dsl
from kfp.dsl import (
    HTML,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from xdetox.components.images import stage_image
from xdetox.config import (
    ActivationConfig,
    AlignmentConfig,
    GenerationConfig,
    InterventionConfig,
    ProbeConfig,
    ScoringConfig,
    ValueVectorConfig,
)
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("probe"), install_kfp_package=False)
@documented(
    model="the frozen model probed",
    data_source="probe data: Jigsaw train.csv or a text,label CSV (toy, a path or gs://)",
    probe_config=ProbeConfig,
    probe="probe.safetensors and the stage's tables and summary",
    metrics="validation (and test) accuracy, ROC AUC and loss; best epoch; examples",
    roc="the probe's ROC curve and confusion matrix",
    test_source="optional held-out CSV in the same formats; empty: none",
)
def train_probe(
    model: Input[Model],
    data_source: str,
    probe_config: dict,
    probe: Output[Model],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    test_source: str = "",
):
    """Linear toxicity probe on the frozen model (``data_source``: ``toy``, path or gs://)."""
    from xdetox.components.interpret.artifact_values import (
        PROBE_CATEGORIES,
        PROBE_METRICS,
        numeric,
        probe_confusion,
        probe_roc,
    )
    from xdetox.components.interpret.runners import probe_from_sources
    from xdetox.components.interpret.settings import ProbeConfig
    from xdetox.config import validate_section

    config = validate_section(ProbeConfig, probe_config, "pipeline parameter 'probe_config'")
    summary = probe_from_sources(
        model.path, data_source, probe.path, config, test_source=test_source, progress=False
    )
    for key, value in numeric(summary, PROBE_METRICS).items():
        metrics.log_metric(key, value)
    curve = probe_roc(summary)
    if curve is not None:
        roc.log_roc_curve(*curve)
    matrix = probe_confusion(summary)
    if matrix is not None:
        roc.log_confusion_matrix(PROBE_CATEGORIES, matrix)
    probe.metadata.update(
        {
            "xdetox_kind": "probe",
            "model_type": summary["model_type"],
            "hidden_size": summary["hidden_size"],
            "data_source": data_source,
            "label": summary["label"],
        }
    )


@dsl.component(base_image=stage_image("value_vectors"), install_kfp_package=False)
@documented(
    model="the model whose MLP value vectors are ranked",
    probe="the trained probe",
    prompts="prompts JSON lines; the configured language's are used",
    value_vector_config=ValueVectorConfig,
    table="value_vectors.csv: the ranked vectors and whether each was kept",
    results="the stage's folder (tables, plots, summary) for later stages",
    html="the stage's plots and tables",
    metrics="candidates, kept vectors and the top cosine",
)
def find_value_vectors(
    model: Input[Model],
    probe: Input[Model],
    prompts: Input[Dataset],
    value_vector_config: dict,
    table: Output[Dataset],
    results: Output[Dataset],
    html: Output[HTML],
    metrics: Output[Metrics],
):
    """Rank MLP value vectors by cosine with the probe; keep those active on English prompts."""
    import shutil

    from xdetox.components.interpret.artifact_values import numeric, stage_html
    from xdetox.components.interpret.settings import ValueVectorConfig
    from xdetox.components.interpret.value_vectors import TABLE_FILE, run_value_vectors
    from xdetox.config import validate_section
    from xdetox.files import atomic_path

    config = validate_section(
        ValueVectorConfig, value_vector_config, "pipeline parameter 'value_vector_config'"
    )
    summary = run_value_vectors(
        model.path, probe.path, prompts.path, results.path, config, progress=False
    )
    with atomic_path(table.path) as tmp:
        shutil.copyfile(f"{results.path}/{TABLE_FILE}", tmp)
    stage_html("Toxic value vectors", results.path, html.path)
    for key, value in numeric(summary, ("n_candidates", "n_kept", "n_positions")).items():
        metrics.log_metric(key, value)
    if summary["top"]:
        metrics.log_metric("top_cosine", float(summary["top"][0]["cosine"]))
    info = {"xdetox_kind": "value_vectors", "format": "csv"}
    info.update({k: summary[k] for k in ("n_candidates", "n_kept", "model_type")})
    table.metadata.update(info)
    results.metadata.update(info)


@dsl.component(base_image=stage_image("intervene"), install_kfp_package=False)
@documented(
    model="the model intervened on",
    neurons="value_vectors.csv (kept rows)",
    prompts="prompts JSON lines",
    language="the language swept; empty: every configured language",
    intervention_config=InterventionConfig,
    generation=(GenerationConfig, "Samples the continuations at each offset."),
    scoring=(ScoringConfig, "Scores those continuations."),
    results="the sweep's table for this language",
)
def intervene(
    model: Input[Model],
    neurons: Input[Dataset],
    prompts: Input[Dataset],
    language: str,
    intervention_config: dict,
    generation: dict,
    scoring: dict,
    results: Output[Dataset],
):
    """Offset sweep on the chosen neurons for ``language`` ("" = every configured language)."""
    from xdetox.components.interpret.runners import intervention_scored
    from xdetox.components.interpret.settings import InterventionConfig
    from xdetox.config import GenerationConfig, ScoringConfig, validate_section

    summary = intervention_scored(
        model.path,
        neurons.path,
        prompts.path,
        results.path,
        validate_section(
            InterventionConfig, intervention_config, "pipeline parameter 'intervention_config'"
        ),
        validate_section(GenerationConfig, generation, "pipeline parameter 'generation'"),
        validate_section(ScoringConfig, scoring, "pipeline parameter 'scoring'"),
        language=language or None,
        progress=False,
    )
    results.metadata.update(
        {
            "xdetox_kind": "intervention_language",
            "languages": ",".join(summary["languages"]),
            "n_neurons": summary["n_neurons"],
        }
    )


@dsl.component(base_image=stage_image("interpret_report"), install_kfp_package=False)
@documented(
    parts="the per-language sweeps",
    results="one table, the toxicity-vs-offset plot and the summary",
    html="the plot and tables",
    metrics="avg_toxicity.offset_<offset>: mean over languages",
)
def combine_interventions(
    parts: Input[List[Dataset]],  # noqa: UP006
    results: Output[Dataset],
    html: Output[HTML],
    metrics: Output[Metrics],
):
    """Join the per-language sweeps: one table, the toxicity-vs-offset plot, the summary."""
    from xdetox.components.interpret.artifact_values import prefixed, stage_html
    from xdetox.components.interpret.intervention_merge import merge_interventions

    summary = merge_interventions([p.path for p in parts], results.path)
    stage_html("Intervention on the toxic neurons", results.path, html.path)
    for key, value in prefixed(summary["mean_over_languages"], "avg_toxicity.offset_").items():
        metrics.log_metric(key, value)
    results.metadata.update(
        {"xdetox_kind": "intervention", "languages": ",".join(summary["languages"])}
    )


@dsl.component(base_image=stage_image("activations"), install_kfp_package=False)
@documented(
    base_model="the base model",
    neurons="value_vectors.csv (kept rows)",
    prompts="prompts JSON lines",
    activation_config=ActivationConfig,
    results="activation tables and plots",
    html="the plots and tables",
    metrics="mean_activation.<model>: mean over languages",
    tuned_model="the tuned model, when compared",
    base_label="the base model's name in tables and plots",
    tuned_label="the tuned model's name in tables and plots",
)
def measure_activations(
    base_model: Input[Model],
    neurons: Input[Dataset],
    prompts: Input[Dataset],
    activation_config: dict,
    results: Output[Dataset],
    html: Output[HTML],
    metrics: Output[Metrics],
    tuned_model: Input[Model] = None,
    base_label: str = "base",
    tuned_label: str = "tuned",
):
    """The neurons' mean activation per language for the base (and the tuned) model."""
    from xdetox.components.interpret.activations import run_activations
    from xdetox.components.interpret.artifact_values import prefixed, stage_html
    from xdetox.components.interpret.settings import ActivationConfig
    from xdetox.config import validate_section

    config = validate_section(
        ActivationConfig, activation_config, "pipeline parameter 'activation_config'"
    )
    models = {base_label: base_model.path}
    if tuned_model is not None:
        models[tuned_label] = tuned_model.path
    summary = run_activations(
        models, neurons.path, prompts.path, results.path, config, progress=False
    )
    stage_html("Toxic neurons before and after tuning", results.path, html.path)
    for key, value in prefixed(summary["mean_over_languages"], "mean_activation.").items():
        metrics.log_metric(key, value)
    results.metadata.update({"xdetox_kind": "activations", "models": ",".join(models)})


@dsl.component(base_image=stage_image("alignment"), install_kfp_package=False)
@documented(
    model="the model whose hidden states are compared",
    pairs_source="parallel sentences, JSON lines or CSV en,text,language (toy, a path or gs://)",
    alignment_config=AlignmentConfig,
    results="per-layer alignment tables, plots and summary",
    html="the plots and tables",
    metrics="Pearson correlations of alignment with the toxicity drop",
    metrics_table="a metrics.csv artifact of a detox run (base vs tuned per language)",
    metrics_source="a metrics.csv path or gs:// URI, read when metrics_table is not connected",
)
def measure_alignment(
    model: Input[Model],
    pairs_source: str,
    alignment_config: dict,
    results: Output[Dataset],
    html: Output[HTML],
    metrics: Output[Metrics],
    metrics_table: Input[Dataset] = None,
    metrics_source: str = "",
):
    """Per-layer cross-lingual alignment; correlated with each language's toxicity drop when a
    metrics table is given (``metrics_table`` artifact, else ``metrics_source`` path/gs://)."""
    from xdetox.components.interpret.artifact_values import numeric, stage_html
    from xdetox.components.interpret.runners import alignment_from_sources
    from xdetox.components.interpret.settings import AlignmentConfig
    from xdetox.config import validate_section

    config = validate_section(
        AlignmentConfig, alignment_config, "pipeline parameter 'alignment_config'"
    )
    source = metrics_table.path if metrics_table is not None else metrics_source
    summary = alignment_from_sources(
        model.path, pairs_source, results.path, config, metrics_source=source, progress=False
    )
    stage_html("Cross-lingual alignment", results.path, html.path)
    correlation = summary.get("correlation") or {}
    keys = ("pearson_mean_cosine", "pearson_retrieval_accuracy", "n_languages")
    for key, value in numeric(correlation, keys).items():
        metrics.log_metric(key, value)
    results.metadata.update({"xdetox_kind": "alignment", "pairs_source": pairs_source})


@dsl.component(base_image=stage_image("interpret_report"), install_kfp_package=False)
@documented(
    probe="the probe stage's output",
    value_vectors="the value vector stage's folder",
    intervention="the combined intervention sweep",
    activations="the activation stage's folder",
    alignment="the alignment stage's folder",
    run_info="run name and settings shown on the report (string → string)",
    html="one page with every stage's plots",
    markdown="a Markdown summary of every stage",
)
def interpret_report(
    probe: Input[Model],
    value_vectors: Input[Dataset],
    intervention: Input[Dataset],
    activations: Input[Dataset],
    alignment: Input[Dataset],
    run_info: dict,
    html: Output[HTML],
    markdown: Output[Markdown],
):
    """One HTML page (plots embedded) and a Markdown summary of every stage."""
    from xdetox.components.interpret.report import write_markdown_report, write_report

    stages = {
        "Toxicity probe": probe.path,
        "Toxic value vectors": value_vectors.path,
        "Intervention on the toxic neurons": intervention.path,
        "Toxic neurons before and after tuning": activations.path,
        "Cross-lingual alignment": alignment.path,
    }
    info = {str(k): str(v) for k, v in run_info.items()}
    write_report(html.path, stages, run_info=info)
    write_markdown_report(markdown.path, stages, run_info=info)
    html.metadata.update({"xdetox_kind": "interpret_report", "format": "html"})
    markdown.metadata.update({"xdetox_kind": "interpret_report", "format": "markdown"})
