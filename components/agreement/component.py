"""KFP component: how two toxicity scorers agree on the same generations, per language."""

from typing import List  # noqa: UP035  KFP's signature parser needs typing.List

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from xdetox.components.images import stage_image
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("agreement"), install_kfp_package=False)
@documented(
    scores_a="score JSON lines of the first scorer (one file per language)",
    scores_b="score JSON lines of the second scorer, on the same generations",
    attribute="the attribute compared, e.g. TOXICITY",
    threshold="a score at or above this counts as toxic (agreement, Cohen's kappa)",
    table="agreement.csv: one row per pair of scorers and language",
    markdown="the table as Markdown",
    html="the table as an HTML page",
    metrics="<scorer_a>_vs_<scorer_b>.<language>.<statistic>, for KFP's run comparison",
)
def scorer_agreement(
    scores_a: Input[List[Dataset]],  # noqa: UP006
    scores_b: Input[List[Dataset]],  # noqa: UP006
    attribute: str,
    threshold: float,
    table: Output[Dataset],
    markdown: Output[Markdown],
    html: Output[HTML],
    metrics: Output[Metrics],
):
    """Per language: Pearson, Spearman, agreement at the threshold and Cohen's kappa."""
    import math

    from xdetox.components.agreement.agreement import agreement_table
    from xdetox.components.agreement.render import agreement_html, agreement_markdown
    from xdetox.files import atomic_path, write_text

    files = [d.path for d in scores_a] + [d.path for d in scores_b]
    df = agreement_table(files, attribute=attribute, threshold=threshold)
    with atomic_path(table.path) as tmp:
        df.to_csv(tmp, index=False)
    write_text(markdown.path, agreement_markdown(df))
    write_text(html.path, agreement_html(df))
    for row in df.to_dict(orient="records"):
        prefix = f"{row['scorer_a']}_vs_{row['scorer_b']}.{row['language']}"
        for key in ("pearson", "spearman", "agreement", "cohen_kappa", "n_paired", "n_missing"):
            value = row[key]
            if isinstance(value, int | float) and math.isfinite(value):
                metrics.log_metric(f"{prefix}.{key}", float(value))
    table.metadata["xdetox_kind"] = "agreement"
