"""ROC curve and ROC-AUC with numpy (scikit-learn is not a dependency); correlations are in
``xdetox.stats``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RocCurve:
    """Points of a ROC curve, from (0, 0) to (1, 1).

    ``thresholds[i]``: a score counts as positive when ``score >= thresholds[i]``. The first
    point's threshold is just above the highest score (nothing positive), kept finite so that
    the curve fits in JSON and in KFP's ClassificationMetrics.
    """

    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]

    def thinned(self, max_points: int) -> RocCurve:
        """At most ``max_points`` points, evenly spread, first and last kept (for UIs)."""
        n = len(self.fpr)
        if n <= max_points:
            return self
        keep = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
        return RocCurve(
            [self.fpr[i] for i in keep],
            [self.tpr[i] for i in keep],
            [self.thresholds[i] for i in keep],
        )


def _check_binary(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray):
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("labels and scores must be 1-D and of the same length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError("ROC needs both classes")
    return y, s


def roc_curve(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> RocCurve:
    """One point per distinct score (tied scores move the curve diagonally, as they should)."""
    y, s = _check_binary(labels, scores)
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    # Last index of each run of equal scores: the curve only moves between distinct thresholds.
    ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[ends]
    fps = (ends + 1) - tps
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    fpr = [0.0, *(fps / n_neg).tolist()]
    tpr = [0.0, *(tps / n_pos).tolist()]
    thresholds = [math.nextafter(float(s[0]), math.inf), *s[ends].tolist()]
    return RocCurve(fpr, tpr, thresholds)


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random
    negative, ties counting one half (trapezoids over :func:`roc_curve`)."""
    curve = roc_curve(labels, scores)
    fpr, tpr = np.asarray(curve.fpr), np.asarray(curve.tpr)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
