"""What the KFP components log from a stage's summary: scalar metrics, ROC points, counts.

Kept free of KFP imports so that it is tested like any other module. A value a stage could not
compute (None, NaN) is left out, never logged as 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from xdetox.components.interpret.report import write_report

PROBE_METRICS = ("validation_accuracy", "validation_roc_auc", "validation_loss", "best_epoch",
                 "n_examples", "n_toxic", "test_accuracy", "test_roc_auc")  # fmt: skip
PROBE_CATEGORIES = ["non-toxic", "toxic"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def numeric(summary: Mapping[str, Any], keys: Iterable[str]) -> dict[str, float]:
    """``{key: float}`` for the keys of ``summary`` that hold a finite number."""
    return {k: float(summary[k]) for k in keys if _is_number(summary.get(k))}


def prefixed(values: Mapping[str, Any] | None, prefix: str) -> dict[str, float]:
    """Finite numbers of a flat mapping, keys prefixed (e.g. per-offset or per-model means)."""
    return {f"{prefix}{k}": float(v) for k, v in (values or {}).items() if _is_number(v)}


def probe_roc(summary: Mapping[str, Any]) -> tuple[list[float], list[float], list[float]] | None:
    """``(fpr, tpr, thresholds)`` of the validation ROC curve (thinned), or None."""
    curve = summary.get("roc_curve")
    if not curve:
        return None
    return list(curve["fpr"]), list(curve["tpr"]), list(curve["thresholds"])


def probe_confusion(summary: Mapping[str, Any]) -> list[list[int]] | None:
    """``[[tn, fp], [fn, tp]]`` (rows: true non-toxic, toxic) of the validation set, or None."""
    counts = summary.get("validation_confusion_matrix")
    if not counts:
        return None
    return [[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]]


def stage_html(title: str, folder: str | Path, path: str | Path) -> None:
    """One stage's folder as an HTML page (facts, plots, tables) for its KFP HTML artifact."""
    write_report(path, {title: folder}, title=title)
