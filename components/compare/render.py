"""The regression report: which languages got more toxic than the baseline allows."""

from __future__ import annotations

import html
import math

import pandas as pd

from xdetox.components.compare.baseline import Comparison
from xdetox.components.report.plots import grouped_bars_png

_STATUS_STYLE = {
    "regressed": "background:#fde2e1;font-weight:bold",
    "ok": "",
    "no baseline": "color:#777",
    "missing in run": "color:#777",
}


def _fmt(value: float) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.4f}"
    )


def comparison_markdown(comparison: Comparison, *, baseline: str) -> str:
    lines = [
        "# Regression check",
        "",
        f"Baseline: `{baseline}`. {comparison.message}.",
        "",
        "| language | metric | baseline | current | delta | margin | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in comparison.table.itertuples():
        lines.append(
            f"| {row.language} | {row.metric} | {_fmt(row.baseline)} | {_fmt(row.current)} | "
            f"{_fmt(row.delta)} | {row.margin:g} | {row.status} |"
        )
    return "\n".join(lines) + "\n"


def comparison_html(comparison: Comparison, *, baseline: str, title: str) -> str:
    table = comparison.table
    rows = "".join(
        f'<tr style="{_STATUS_STYLE.get(r.status, "")}">'
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                r.language,
                r.metric,
                _fmt(r.baseline),
                _fmt(r.current),
                _fmt(r.delta),
                f"{r.margin:g}",
                r.status,
            )
        )
        + "</tr>"
        for r in table.itertuples()
    )
    metric = str(table.metric.iloc[0]) if len(table) else ""
    plot_df = pd.concat(
        [
            pd.DataFrame({"model": "baseline", "language": table.language, metric: table.baseline}),
            pd.DataFrame({"model": "current", "language": table.language, metric: table.current}),
        ]
    )
    png = grouped_bars_png(plot_df, [(metric, metric)], title=f"{metric}: baseline vs current")
    verdict = "regressed" if comparison.regressed else "ok"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;"
        "padding:4px 8px}table{border-collapse:collapse}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>Baseline: <code>{html.escape(baseline)}</code></p>"
        f"<p class='verdict {verdict}'><b>{html.escape(comparison.message)}</b></p>"
        "<table><tr><th>language</th><th>metric</th><th>baseline</th><th>current</th>"
        f"<th>delta</th><th>margin</th><th>status</th></tr>{rows}</table>"
        f"<p><img src='data:image/png;base64,{png}' alt='baseline vs current'></p>"
        "</body></html>\n"
    )
