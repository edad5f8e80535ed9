"""KFP components: one language's examples (the texts behind the numbers), and the report that
aggregates every language's metrics and examples into HTML/Markdown."""

from typing import List  # noqa: UP035  KFP's signature parser needs typing.List

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from xdetox.components.images import stage_image
from xdetox.config import ScoringConfig
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("report"), install_kfp_package=False)
@documented(
    scores="every model's score JSON lines: a gathered folder (the first model's most toxic "
    "prompts are picked: the base model) or one model's file (the eval pipeline)",
    language="the language of the scores",
    top_prompts="how many prompts to keep (the most toxic first)",
    samples_per_model="how many of each model's continuations of a prompt to keep (the most "
    "toxic first)",
    examples="examples JSON: the prompts, continuations, scores and matched words",
)
def language_examples(
    scores: Input[Dataset],
    language: str,
    examples: Output[Dataset],
    top_prompts: int = 3,
    samples_per_model: int = 2,
):
    """The prompts where the first model was most toxic, with every model's continuations."""
    from xdetox.components.report.examples import build_examples, write_examples
    from xdetox.components.score.gather import score_files

    # The ranking model: the base model when there is one, else the first file's model.
    found = build_examples(
        score_files(scores.path), top_prompts=top_prompts, samples_per_model=samples_per_model
    )
    write_examples(examples.path, found)
    examples.metadata.update(
        {
            "xdetox_kind": "examples",
            "language": language,
            "format": "json",
            "n_prompts": sum(len(e["prompts"]) for e in found),
        }
    )


@dsl.component(base_image=stage_image("report"), install_kfp_package=False)
@documented(
    tables="per-language metrics CSVs",
    examples="per-language examples JSON (the texts where the base model was most toxic)",
    run_info="run name and settings shown on the report (string → string)",
    scoring=(ScoringConfig, "Here it only names the scorer on the report."),
    metrics_csv="metrics.csv: every model × language, and ALL",
    html="report.html: tables, plots and example texts",
    markdown="the metrics table as Markdown",
    summary="<model>.ALL.<metric> (and tuned − base deltas) as KFP metrics",
)
def report(
    tables: Input[List[Dataset]],  # noqa: UP006
    examples: Input[List[Dataset]],  # noqa: UP006
    run_info: dict,
    scoring: dict,
    metrics_csv: Output[Dataset],
    html: Output[HTML],
    markdown: Output[Markdown],
    summary: Output[Metrics],
):
    """Write ``metrics.csv`` (all models × languages), ``report.html`` and a Markdown table."""
    from xdetox.components.metrics.kfp_metrics import log_table
    from xdetox.components.metrics.per_language import write_metrics_csv
    from xdetox.components.report.aggregate import aggregate_metrics
    from xdetox.components.report.examples import read_examples
    from xdetox.components.report.html_report import render_markdown, render_report
    from xdetox.components.score.scorers import get_scorer
    from xdetox.config import ScoringConfig, validate_section

    scorer = get_scorer(validate_section(ScoringConfig, scoring, "pipeline parameter 'scoring'"))
    df = aggregate_metrics([t.path for t in tables])
    write_metrics_csv(df, metrics_csv.path)
    info = {str(k): str(v) for k, v in run_info.items()}
    render_report(
        df,
        html.path,
        title=f"xdetox report: {info.get('name', 'run')}",
        scorer_description=scorer.name,
        run_info=info,
        examples=read_examples([e.path for e in examples]),
    )
    from xdetox.files import write_text

    write_text(markdown.path, render_markdown(df, title="xdetox metrics", run_info=info))
    # <model>.ALL.<metric> (and the tuned rows' deltas with their confidence intervals).
    log_table(df[df["language"] == "ALL"], summary)
    metrics_csv.metadata["xdetox_kind"] = "metrics_all"
    html.metadata.update({"xdetox_kind": "report", "format": "html"})
    markdown.metadata.update({"xdetox_kind": "report", "format": "markdown"})
