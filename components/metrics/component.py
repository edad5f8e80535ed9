"""KFP component: toxicity, fluency and diversity metrics of every model in one language."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from xdetox.components.images import stage_image
from xdetox.config import MetricsConfig
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("metrics"), install_kfp_package=False)
@documented(
    scores="every model's score JSON lines for this language: a gathered folder (base first, "
    "then each model in the order evaluated) or one model's file",
    reference_model="the model that measures perplexity and tokenizes distinct-n (absent when "
    "metrics.perplexity_model and metrics.diversity_tokenizer name others)",
    language="the language measured",
    metrics_config=MetricsConfig,
    comparisons="{model: other}: models also measured against a second model besides the "
    "base (sft_dpo against sft, the control against the tuned model)",
    table="metrics CSV: one row per model, with each model's change against the base (and "
    "against its second model)",
    metrics="the table's numbers as KFP metrics",
)
def language_metrics(
    scores: Input[Dataset],
    language: str,
    metrics_config: dict,
    table: Output[Dataset],
    metrics: Output[Metrics],
    reference_model: Input[Model] = None,
    comparisons: Optional[dict] = None,  # noqa: UP045 (KFP reads Optional, not X | None)
):
    """Every model of one language: a metrics CSV, and its numbers as KFP metrics."""
    from xdetox.components.metrics.kfp_metrics import log_table
    from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
    from xdetox.components.score.gather import score_files
    from xdetox.config import MetricsConfig, validate_section

    config = validate_section(MetricsConfig, metrics_config, "pipeline parameter 'metrics'")
    model_dir = None if reference_model is None else reference_model.path
    df = compute_metrics(
        score_files(scores.path), config, model_dir=model_dir, comparisons=comparisons or {}
    )
    write_metrics_csv(df, table.path)
    log_table(df, metrics)
    table.metadata.update({"xdetox_kind": "metrics", "language": language})
