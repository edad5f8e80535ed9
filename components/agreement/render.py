"""The agreement table as files: ``agreement.csv``, ``agreement.md`` and ``agreement.html``.

Missing (undefined) statistics show as "—", never 0. All text is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from xdetox.components.agreement.agreement import agreement_table
from xdetox.files import atomic_path, write_text

MISSING = "—"
# (column, header) shown in the Markdown/HTML tables; the CSV keeps every column.
SHOWN: tuple[tuple[str, str], ...] = (
    ("scorer_a", "scorer A"),
    ("scorer_b", "scorer B"),
    ("language", "language"),
    ("n_paired", "pairs"),
    ("n_missing", "missing"),
    ("pearson", "Pearson r"),
    ("spearman", "Spearman ρ"),
    ("agreement", "agreement ≥ thr"),
    ("cohen_kappa", "Cohen κ"),
    ("positive_rate_a", "A ≥ thr"),
    ("positive_rate_b", "B ≥ thr"),
)
NOTE = (
    "Pairs: samples both scorers scored (joined on model, prompt_id, sample_index, language). "
    "Missing: joined samples without a score on one side (excluded). Agreement: share of pairs "
    "on the same side of the threshold; κ corrects it for chance. ALL pools every language."
)


def _cell(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if column.startswith("n_"):
        return str(int(value))  # type: ignore[arg-type]
    if column in ("agreement", "positive_rate_a", "positive_rate_b"):
        return f"{100 * float(value):.1f}%"  # type: ignore[arg-type]
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def agreement_markdown(df: pd.DataFrame, title: str = "Scorer agreement") -> str:
    threshold = df["threshold"].iloc[0] if len(df) else 0.5
    attribute = df["attribute"].iloc[0] if len(df) else "TOXICITY"
    lines = [
        f"# {title}",
        "",
        f"Attribute {attribute}, threshold {threshold:g}.",
        "",
        "| " + " | ".join(h for _, h in SHOWN) + " |",
        "|" + "|".join("---" for _ in SHOWN) + "|",
    ]
    for row in df.to_dict(orient="records"):
        cells = [_cell(c, row[c]).replace("|", "\\|") for c, _ in SHOWN]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", NOTE]) + "\n"


def agreement_html(df: pd.DataFrame, title: str = "Scorer agreement") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in SHOWN)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(c, row[c]))}</td>" for c, _ in SHOWN) + "</tr>"
        for row in df.to_dict(orient="records")
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>body{{font-family:system-ui,sans-serif}}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.2em .6em}"
        f"</style></head><body><h1>{html.escape(title)}</h1>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<p>{html.escape(NOTE)}</p></body></html>\n"
    )


def write_agreement(df: pd.DataFrame, output_dir: str | Path) -> dict[str, Path]:
    """Write ``agreement.csv``, ``.md`` and ``.html`` into ``output_dir`` (each atomically)."""
    output_dir = Path(output_dir)
    paths = {ext: output_dir / f"agreement.{ext}" for ext in ("csv", "md", "html")}
    with atomic_path(paths["csv"]) as tmp:
        df.to_csv(tmp, index=False)
    write_text(paths["md"], agreement_markdown(df))
    write_text(paths["html"], agreement_html(df))
    return paths


def run_agreement(
    score_files: Sequence[str | Path],
    output_dir: str | Path,
    *,
    attribute: str = "TOXICITY",
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Compute the agreement of the scorers in ``score_files`` and write it to ``output_dir``;
    nothing is written when the input is bad."""
    df = agreement_table(score_files, attribute=attribute, threshold=threshold)
    write_agreement(df, output_dir)
    return df
