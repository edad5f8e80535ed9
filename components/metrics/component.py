"""KFP component: toxicity, fluency and diversity metrics for one language, base vs tuned."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.images import BASE_IMAGE


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
    """Write a per-language metrics CSV and log its numbers as KFP metrics."""
    import math

    from components.metrics.per_language import compute_metrics, write_metrics_csv
    from xdetox.config import MetricsConfig, validate_section

    config = validate_section(MetricsConfig, metrics_config, "pipeline parameter 'metrics'")
    df = compute_metrics(
        [base_scores.path, tuned_scores.path], config, model_dir=reference_model.path
    )
    write_metrics_csv(df, table.path)
    for row in df.to_dict(orient="records"):
        for key in (
            "expected_max_toxicity",
            "toxicity_probability",
            "avg_toxicity",
            "perplexity",
            "dist_1",
            "dist_2",
            "dist_3",
            "n_missing",
        ):
            value = row.get(key)
            if isinstance(value, int | float) and not math.isnan(value):
                metrics.log_metric(f"{row['model']}.{language}.{key}", float(value))
    table.metadata.update({"xdetox_kind": "metrics", "language": language})
