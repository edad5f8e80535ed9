"""Dose-response along training: does the change in each language follow English, and at what
fluency cost?

With ``training.dose_response`` a run evaluates its first method's model part-way through
training (``dpo_at25``, ``dpo_at50``, ...) beside the final one. Per language the points run
from the base (0, 0) through each snapshot to the final model:

- left panel: English's change of EMT (x) against the language's (y). A cross-lingual transfer
  moves along with English from the first snapshots on (points near the diagonal);
- right panel: the fluency cost (x, the base model's NLL of the continuations, model − base,
  nats/token) against the language's change (y). A drop that appears only once the cost is
  large is drift, not detoxification.

The values are the metrics table's (``delta_expected_max_toxicity``, ``delta_nll_mean``), so
the plot and ``metrics.csv`` never disagree.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import pandas as pd

from xdetox.components.metrics.columns import NLL_METRIC, delta_column
from xdetox.components.report.aggregate import ALL_LANGUAGES
from xdetox.components.report.model_tables import languages_of, rows_by_key
from xdetox.plots import new_figure, png_bytes
from xdetox.records import parse_snapshot_label

METRIC = "expected_max_toxicity"
TRAINING_LANGUAGE = "en"  # XG tunes on English only; the other languages are the transfer


@dataclass(frozen=True)
class DosePoint:
    fraction: float  # of training: 0 = the base, 1 = the final model
    model: str
    delta: float  # the language's change of EMT against the base
    english_delta: float  # English's change at the same point of training
    cost: float  # fluency cost (NaN when perplexity was not measured)


def _number(value: object) -> float:
    number = pd.to_numeric(value, errors="coerce")
    return math.nan if pd.isna(number) else float(number)


def dose_series(df: pd.DataFrame) -> tuple[str, dict[str, list[DosePoint]]] | None:
    """``(model, {language: points in training order})`` for the model whose snapshots the
    table holds, or None when it holds none."""
    snapshots: dict[str, dict[str, float]] = {}
    for label in dict.fromkeys(str(m) for m in df["model"]):
        parsed = parse_snapshot_label(label)
        if parsed is not None:
            snapshots.setdefault(parsed[0], {})[label] = parsed[1]
    final = next((m for m in snapshots if m in set(df["model"])), None)
    if final is None:
        return None
    stages = [*sorted(snapshots[final].items(), key=lambda item: item[1]), (final, 1.0)]
    rows = rows_by_key(df)
    series: dict[str, list[DosePoint]] = {}
    for language in languages_of(df):
        if language == ALL_LANGUAGES:
            continue
        points = [DosePoint(0.0, "base", 0.0, 0.0, 0.0)]
        for label, fraction in stages:
            row, english = rows.get((label, language)), rows.get((label, TRAINING_LANGUAGE))
            if row is None:
                continue
            points.append(
                DosePoint(
                    fraction, label, _number(row.get(delta_column(METRIC))),
                    _number(english.get(delta_column(METRIC))) if english else math.nan,
                    _number(row.get(delta_column(NLL_METRIC))),
                )
            )  # fmt: skip
        series[language] = points
    return final, series


def dose_response_png(df: pd.DataFrame) -> str | None:
    """Base64 PNG of the two panels (see module docstring), or None without snapshots."""
    found = dose_series(df)
    if found is None:
        return None
    model, series = found
    fig = new_figure(9.5, 4.2)
    left, right = fig.subplots(1, 2)
    for language, points in series.items():
        ys = [p.delta for p in points]
        (line,) = left.plot([p.english_delta for p in points], ys, marker="o", label=language,
                            linewidth=2.2 if language == TRAINING_LANGUAGE else 1.2)  # fmt: skip
        right.plot([p.cost for p in points], ys, marker="o", color=line.get_color(),
                   linewidth=line.get_linewidth())  # fmt: skip
        last = points[-1]
        right.annotate(language, (last.cost, last.delta), fontsize=7, xytext=(3, 3),
                       textcoords="offset points")  # fmt: skip
    english = series.get(TRAINING_LANGUAGE)
    for point in english or []:  # the fraction of training beside English's points
        if point.fraction not in (0.0, 1.0):
            left.annotate(f"{100 * point.fraction:.0f}%", (point.english_delta, point.delta),
                          fontsize=7, xytext=(3, -9), textcoords="offset points")  # fmt: skip
    low = min(
        [0.0]
        + [p.english_delta for ps in series.values() for p in ps if not math.isnan(p.english_delta)]
    )
    left.plot([low, 0], [low, 0], color="grey", linestyle=":", linewidth=0.8, label="= English")
    for ax in (left, right):
        ax.axhline(0, color="grey", linewidth=0.6, linestyle="--")
        ax.grid(alpha=0.3)
        ax.set_ylabel("Δ EMT in the language (model − base)")
    left.set_xlabel("Δ EMT in English (model − base)")
    right.set_xlabel("fluency cost: Δ NLL under the base (nats/token)")
    left.legend(fontsize=7, ncol=2)
    fig.suptitle(f"Dose-response along training of {model}: base → snapshots → final", fontsize=10)
    fig.tight_layout()
    return base64.b64encode(png_bytes(fig)).decode("ascii")
