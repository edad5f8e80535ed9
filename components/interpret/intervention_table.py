"""The intervention stage's output files, written without torch or transformers.

Shared by the sweep (:mod:`.intervention`) and by the step that joins per-language sweeps
(:mod:`.intervention_merge`), which then runs in a light CPU container in a second or two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xdetox.components.interpret.plots import lines_png
from xdetox.components.interpret.prompt_selection import ALL_LANGUAGES
from xdetox.components.interpret.tables import write_csv
from xdetox.files import atomic_dir, write_json, write_jsonl

TABLE_FILE = "intervention.csv"
PLOT_FILE = "intervention.png"
GENERATIONS_FILE = "intervention_generations.jsonl"
SUMMARY_FILE = "intervention_summary.json"
COLUMNS = ("offset", "language", "avg_toxicity", "n", "n_missing")


def write_intervention(
    output_dir: str | Path,
    rows: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    *,
    languages: Sequence[str],
    offsets: Sequence[float],
    n_neurons: int,
    model_type: str,
    generation: Mapping[str, Any],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """Write the table, scored generations, plot and summary of a sweep into ``output_dir``
    (replaced whole, atomically); return the summary.

    ``rows``: per offset, one row per language and an ``ALL`` row, as :func:`intervention_sweep`
    makes them (and :mod:`.intervention_merge` rebuilds them from per-language runs).
    """
    attribute = str(config.get("attribute", "TOXICITY"))
    value = {(float(r["offset"]), r["language"]): r["avg_toxicity"] for r in rows}
    series = {
        lang: [value.get((float(o), lang)) for o in offsets] for lang in [*languages, ALL_LANGUAGES]
    }
    summary: dict[str, Any] = {
        "model_type": model_type,
        "n_neurons": n_neurons,
        "languages": list(languages),
        "n_prompts": len({(r["language"], r["prompt_id"]) for r in records}),
        "offsets": list(offsets),
        "attribute": attribute,
        "mean_over_languages": {
            f"{o:g}": v for o, v in zip(offsets, series[ALL_LANGUAGES], strict=True)
        },
        "n_missing": sum(r["n_missing"] for r in rows if r["language"] != ALL_LANGUAGES),
        "generation": dict(generation),
        "config": dict(config),
        "files": {
            "table": TABLE_FILE,
            "plot": PLOT_FILE,
            "generations": GENERATIONS_FILE,
            "summary": SUMMARY_FILE,
        },
    }
    with atomic_dir(output_dir) as tmp:
        write_csv(tmp / TABLE_FILE, rows, COLUMNS)
        write_jsonl(tmp / GENERATIONS_FILE, records)
        lines_png(
            tmp / PLOT_FILE,
            offsets,
            series,
            xlabel="offset added to the neurons",
            ylabel=f"average {attribute}",
            highlight=ALL_LANGUAGES,
            title=f"Shifting {n_neurons} toxic neurons ({model_type})",
        )
        write_json(tmp / SUMMARY_FILE, summary)
    return summary
