"""One self-contained HTML page of the interpretability results (for a KFP HTML artifact).

Each stage's folder (probe, value vectors, intervention, activations, alignment) becomes a
section: its summary's headline numbers, its CSV tables (first rows) and its PNG plots embedded
as base64. Every piece of text from files is HTML-escaped; an empty cell shows as "—".
"""

from __future__ import annotations

import base64
import csv
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdetox.errors import DataError
from xdetox.files import write_text

MISSING = "—"
DEFAULT_TITLE = "xdetox: why does English detoxification carry over to other languages?"
NOT_SHOWN = frozenset({"roc_curve.csv"})  # hundreds of points; the plot shows them
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; margin: 0.5em 0 1.5em; }
.note { color: #555; font-size: 0.9em; }
"""


@dataclass
class ReportSection:
    title: str
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # scalar headline values
    tables: list[Path] = field(default_factory=list)  # CSV files
    images: list[Path] = field(default_factory=list)  # PNG files


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _format(value: object) -> str:
    if value is None or value == "":
        return MISSING
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return value if number.is_integer() and "." not in value else f"{number:.4g}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def table_html(path: Path, max_rows: int) -> str:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return f"<p class='note'>{_esc(path.name)}: empty</p>"
    header, body = rows[0], rows[1:]
    out = [f"<p class='note'>{_esc(path.name)}"]
    if len(body) > max_rows:
        out.append(f" (first {max_rows} of {len(body)} rows; the file has them all)")
    out.append("</p><table><tr>")
    out.extend(f"<th>{_esc(h)}</th>" for h in header)
    out.append("</tr>")
    for row in body[:max_rows]:
        cells = [
            f"<td class='num'>{_esc(_format(c))}</td>"
            if _is_number(c)
            else f"<td>{_esc(_format(c))}</td>"
            for c in row
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def image_html(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{_esc(path.stem)}' src='data:image/png;base64,{data}'>"


def build_html(title: str, sections: Sequence[ReportSection], *, max_rows: int = 50) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{_esc(section.title)}</h2>")
        parts.extend(f"<p class='note'>{_esc(n)}</p>" for n in section.notes)
        if section.facts:
            parts.append("<table>")
            parts.extend(
                f"<tr><th>{_esc(k)}</th><td>{_esc(_format(v))}</td></tr>"
                for k, v in section.facts.items()
            )
            parts.append("</table>")
        parts.extend(image_html(p) for p in section.images)
        parts.extend(table_html(p, max_rows) for p in section.tables)
    parts.append("</body></html>")
    return "\n".join(parts)


def _scalars(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar entries of a summary, nested mappings flattened as ``a.b`` (lists left out)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("config", "files", "generation", "history", "roc_curve"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_scalars(value, f"{name}."))
        elif value is None or isinstance(value, str | int | float | bool):
            out[name] = value
    return out


def section_from_dir(title: str, folder: str | Path) -> ReportSection:
    """A section from a stage's output folder: ``*summary.json`` facts, CSVs, PNGs."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("stage output folder not found", folder)
    section = ReportSection(title)
    for path in sorted(folder.glob("*summary.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"not valid JSON ({exc})", path) from None
        if isinstance(data, Mapping):
            section.facts.update(_scalars(data))
    section.tables = [p for p in sorted(folder.glob("*.csv")) if p.name not in NOT_SHOWN]
    section.images = sorted(folder.glob("*.png"))
    return section


def _sections(
    stage_dirs: Mapping[str, str | Path], run_info: Mapping[str, Any] | None
) -> list[ReportSection]:
    sections = [section_from_dir(name, folder) for name, folder in stage_dirs.items()]
    if run_info:
        sections.insert(0, ReportSection("Run", facts=dict(run_info)))
    return sections


def write_report(
    path: str | Path,
    stage_dirs: Mapping[str, str | Path],
    *,
    title: str = DEFAULT_TITLE,
    max_rows: int = 50,
    run_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the HTML page for ``{section title: stage output folder}``; return what it holds.

    ``run_info`` (model names, data sources, ...) becomes a first "Run" section.
    """
    sections = _sections(stage_dirs, run_info)
    write_text(path, build_html(title, sections, max_rows=max_rows))
    return {
        "sections": [s.title for s in sections],
        "tables": sum(len(s.tables) for s in sections),
        "images": sum(len(s.images) for s in sections),
    }


def _md(value: object) -> str:
    """A Markdown table cell: pipes escaped, newlines folded."""
    return _format(value).replace("|", "\\|").replace("\n", " ")


def table_markdown(path: Path, max_rows: int) -> str:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return f"`{path.name}`: empty\n"
    header, body = rows[0], rows[1:]
    note = f" (first {max_rows} of {len(body)} rows)" if len(body) > max_rows else ""
    out = [f"`{path.name}`{note}", "", "| " + " | ".join(_md(h) for h in header) + " |"]
    out.append("|" + "---|" * len(header))
    out.extend("| " + " | ".join(_md(c) for c in row) + " |" for row in body[:max_rows])
    return "\n".join(out) + "\n"


def build_markdown(title: str, sections: Sequence[ReportSection], *, max_rows: int = 20) -> str:
    """The report as Markdown (KFP's Markdown viewer): facts and tables; plots are named and
    live in the HTML report (data-URI images are not shown by every Markdown viewer)."""
    parts = [f"# {title}", ""]
    for section in sections:
        parts += [f"## {section.title}", ""]
        parts.extend(f"_{n}_\n" for n in section.notes)
        if section.facts:
            parts += ["| | |", "|---|---|"]
            parts.extend(f"| {_md(k)} | {_md(v)} |" for k, v in section.facts.items())
            parts.append("")
        if section.images:
            names = ", ".join(f"`{p.name}`" for p in section.images)
            parts += [f"Plots (in the HTML report): {names}", ""]
        parts.extend(table_markdown(p, max_rows) for p in section.tables)
    return "\n".join(parts).rstrip("\n") + "\n"


def write_markdown_report(
    path: str | Path,
    stage_dirs: Mapping[str, str | Path],
    *,
    title: str = DEFAULT_TITLE,
    max_rows: int = 20,
    run_info: Mapping[str, Any] | None = None,
) -> None:
    """Write the Markdown version of :func:`write_report`."""
    write_text(path, build_markdown(title, _sections(stage_dirs, run_info), max_rows=max_rows))
