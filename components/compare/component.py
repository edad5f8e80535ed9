"""KFP components: compare a run's metrics with a baseline; fail the run on a regression."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from xdetox.components.images import stage_image
from xdetox.config import EvaluationConfig
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("compare"), install_kfp_package=False)
@documented(
    metrics_csv="this run's metrics.csv (every model × language)",
    evaluation=EvaluationConfig,
    comparison="comparison.csv: per language the baseline and current value, delta, status",
    flags="regressed.<language>, delta.<language> and n_regressed",
    report="the comparison as an HTML page",
    summary="the comparison as Markdown",
    returns="whether to fail the run: a language regressed and fail_on_regression is set",
)
def compare_with_baseline(
    metrics_csv: Input[Dataset],
    evaluation: dict,
    comparison: Output[Dataset],
    flags: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
) -> bool:
    """Flag every language whose toxicity rose beyond the margin; return whether to fail.

    A single ``bool`` output, because KFP's local runner cannot read a NamedTuple field in a
    ``dsl.If`` condition (it skips the branch).
    """
    import math

    import pandas as pd

    from xdetox.components.compare.baseline import compare_with_baseline as compare
    from xdetox.components.compare.baseline import read_metrics_table
    from xdetox.components.compare.render import comparison_html, comparison_markdown
    from xdetox.config import EvaluationConfig, validate_section
    from xdetox.files import atomic_path, write_text

    config = validate_section(EvaluationConfig, evaluation, "pipeline parameter 'evaluation'")
    comparison.metadata.update({"xdetox_kind": "comparison", "format": "csv"})
    report.metadata.update({"xdetox_kind": "comparison", "format": "html"})
    if not config.baseline:
        message = "no baseline configured: nothing compared"
        write_text(summary.path, f"# Regression check\n\n{message}.\n")
        write_text(report.path, f"<html><body><p>{message}</p></body></html>\n")
        with atomic_path(comparison.path) as tmp:
            pd.DataFrame(columns=["language", "status"]).to_csv(tmp, index=False)
        flags.log_metric("n_regressed", 0.0)
        return False

    current = pd.read_csv(metrics_csv.path)
    result = compare(
        current,
        read_metrics_table(config.baseline),
        config,
        baseline_source=config.baseline,
    )
    with atomic_path(comparison.path) as tmp:
        result.table.to_csv(tmp, index=False)
    for row in result.table.itertuples():
        flags.log_metric(f"regressed.{row.language}", float(row.status == "regressed"))
        if not math.isnan(row.delta):
            flags.log_metric(f"delta.{row.language}", float(row.delta))
    flags.log_metric("n_regressed", float(len(result.regressed)))
    write_text(summary.path, comparison_markdown(result, baseline=config.baseline))
    write_text(
        report.path,
        comparison_html(result, baseline=config.baseline, title="xdetox regression check"),
    )
    comparison.metadata.update({"xdetox_kind": "comparison", "regressed": result.regressed})
    return bool(result.regressed) and config.fail_on_regression


@dsl.component(base_image=stage_image("compare"), install_kfp_package=False)
@documented(comparison="comparison.csv written by compare_with_baseline")
def fail_run(comparison: Input[Dataset]):
    """Fail the run on purpose, so a schedule shows the regression as a failed run."""
    import pandas as pd

    table = pd.read_csv(comparison.path)
    regressed = table[table.status == "regressed"]
    detail = ", ".join(f"{r.language} {r.delta:+.4f}" for r in regressed.itertuples())
    raise RuntimeError(f"xdetox eval: toxicity regressed beyond the margin in: {detail}")
