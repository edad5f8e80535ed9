"""KFP components: toxicity, fluency and diversity metrics for one language."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from xdetox.components.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def language_metrics(
    base_scores: Input[Dataset],
    tuned_scores: Input[Dataset],
    reference_model: Input[Model],
    language: str,
    metrics_config: dict,
    table: Output[Dataset],
    metrics: Output[Metrics],
):
    """Base vs tuned for one language: a metrics CSV, and its numbers as KFP metrics."""
    from xdetox.components.metrics.kfp_metrics import log_table
    from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
    from xdetox.config import MetricsConfig, validate_section

    config = validate_section(MetricsConfig, metrics_config, "pipeline parameter 'metrics'")
    df = compute_metrics(
        [base_scores.path, tuned_scores.path], config, model_dir=reference_model.path
    )
    write_metrics_csv(df, table.path)
    log_table(df, metrics)
    table.metadata.update({"xdetox_kind": "metrics", "language": language})


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def model_metrics(
    scores: Input[Dataset],
    reference_model: Input[Model],
    language: str,
    metrics_config: dict,
    table: Output[Dataset],
    metrics: Output[Metrics],
):
    """One model, one language (the eval pipeline): a metrics CSV and KFP metrics."""
    from xdetox.components.metrics.kfp_metrics import log_table
    from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
    from xdetox.config import MetricsConfig, validate_section

    config = validate_section(MetricsConfig, metrics_config, "pipeline parameter 'metrics'")
    df = compute_metrics([scores.path], config, model_dir=reference_model.path)
    write_metrics_csv(df, table.path)
    log_table(df, metrics)
    table.metadata.update({"xdetox_kind": "metrics", "language": language})
