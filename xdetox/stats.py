"""Correlation coefficients shared by every stage that reports one (scorer agreement, alignment).

One implementation with its edge rules written down, because two copies had drifted apart: one
answered NaN below two pairs, the other ``None`` below three. The rules here, for paired values:

* ``x`` and ``y`` of different lengths, or not 1-D: ``ValueError`` (a caller's bug).
* a NaN on either side: NaN. A missing value makes the coefficient unknown; callers that mean to
  skip missing pairs drop them first and count them, so the skipping is visible.
* fewer than ``min_pairs`` pairs (never fewer than 2): NaN. Two points always lie on a line
  (r = ±1), so a caller that reports r as evidence of a relation asks for 3.
* a constant side: NaN (zero variance: r is 0/0, not 0).

Undefined is NaN, never 0 and never a made-up number; a JSON writer turns it into ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

ArrayLike = Sequence[float] | np.ndarray


def _paired(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-D and of the same length (got {a.shape}, {b.shape})")
    return a, b


def pearson(x: ArrayLike, y: ArrayLike, *, min_pairs: int = 2) -> float:
    """Pearson's r of paired values; NaN where undefined (see the module docstring)."""
    a, b = _paired(x, y)
    if len(a) < max(2, min_pairs) or np.isnan(a).any() or np.isnan(b).any():
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    if denominator == 0.0:
        return math.nan
    # Rounding can push |r| of (almost) collinear data a hair past 1.
    return max(-1.0, min(1.0, float((da * db).sum()) / denominator))


def spearman(x: ArrayLike, y: ArrayLike, *, min_pairs: int = 2) -> float:
    """Spearman's ρ: Pearson's r of the ranks (ties get their average rank); same edge rules."""
    a, b = _paired(x, y)
    if np.isnan(a).any() or np.isnan(b).any():
        return math.nan  # ranking would skip NaN silently
    return pearson(
        pd.Series(a).rank(method="average").to_numpy(),
        pd.Series(b).rank(method="average").to_numpy(),
        min_pairs=min_pairs,
    )


def nan_to_none(value: float) -> float | None:
    """``None`` for NaN, for JSON files (which have no NaN) and KFP metrics."""
    return None if math.isnan(value) else value
