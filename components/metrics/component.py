"""KFP components: toxicity, fluency and diversity metrics for one language."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from xdetox.components.images import stage_image
from xdetox.config import MetricsConfig
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("metrics"), install_kfp_package=False)
@documented(
    base_scores="the base model's score JSON lines for this language",
    tuned_scores="the tuned model's score JSON lines for this language",
    reference_model="the model that measures perplexity and tokenizes distinct-n (absent when "
    "metrics.perplexity_model and metrics.diversity_tokenizer name others)",
    language="the language measured",
    metrics_config=MetricsConfig,
    table="metrics CSV: one row per model, with the tuned − base deltas",
    metrics="the table's numbers as KFP metrics",
)
def language_metrics(
    base_scores: Input[Dataset],
    tuned_scores: Input[Dataset],
    language: str,
    metrics_config: dict,
    table: Output[Dataset],
    metrics: Output[Metrics],
    reference_model: Input[Model] = None,
):
    """Base vs tuned for one language: a metrics CSV, and its numbers as KFP metrics."""
    from xdetox.components.metrics.kfp_metrics import log_table
    from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
    from xdetox.config import MetricsConfig, validate_section

    config = validate_section(MetricsConfig, metrics_config, "pipeline parameter 'metrics'")
    model_dir = None if reference_model is None else reference_model.path
    df = compute_metrics([base_scores.path, tuned_scores.path], config, model_dir=model_dir)
    write_metrics_csv(df, table.path)
    log_table(df, metrics)
    table.metadata.update({"xdetox_kind": "metrics", "language": language})


@dsl.component(base_image=stage_image("metrics"), install_kfp_package=False)
@documented(
    scores="the model's score JSON lines for this language",
    reference_model="the model that measures perplexity and tokenizes distinct-n (absent when "
    "metrics.perplexity_model and metrics.diversity_tokenizer name others)",
    language="the language measured",
    metrics_config=MetricsConfig,
    table="metrics CSV: one row",
    metrics="the table's numbers as KFP metrics",
)
def model_metrics(
    scores: Input[Dataset],
    language: str,
    metrics_config: dict,
    table: Output[Dataset],
    metrics: Output[Metrics],
    reference_model: Input[Model] = None,
):
    """One model, one language (the eval pipeline): a metrics CSV and KFP metrics."""
    from xdetox.components.metrics.kfp_metrics import log_table
    from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
    from xdetox.config import MetricsConfig, validate_section

    config = validate_section(MetricsConfig, metrics_config, "pipeline parameter 'metrics'")
    model_dir = None if reference_model is None else reference_model.path
    df = compute_metrics([scores.path], config, model_dir=model_dir)
    write_metrics_csv(df, table.path)
    log_table(df, metrics)
    table.metadata.update({"xdetox_kind": "metrics", "language": language})
