"""The shared correlation coefficients: values by hand and every edge rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xdetox.stats import nan_to_none, pearson, spearman


def test_pearson_and_spearman_by_hand():
    x, y = np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 5, 9])
    # dx = -1.5 -.5 .5 1.5; dy = -3 -1 0 4; Σdxdy = 11; Σdx² = 5; Σdy² = 26
    assert pearson(x, y) == pytest.approx(11 / math.sqrt(130))
    assert spearman(x, y) == pytest.approx(1.0)  # same order
    # x = 1,2,3; y = 2,4,7: Σdxdy = 5, Σdx² = 2, Σdy² = 114/9 (plain lists work too).
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # Ties get their average rank: x ranks 1, 2.5, 2.5, 4 against 1, 2, 3, 4.
    assert spearman([1.0, 2, 2, 3], [1.0, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    # b ranks 1, 2, 4, 3: ρ = 1 − 6·Σd² / (n(n²−1)) = 1 − 12/60
    assert spearman([0.1, 0.4, 0.6, 0.9], [0.2, 0.3, 0.8, 0.7]) == pytest.approx(0.8)


def test_a_constant_side_is_undefined_not_zero():
    assert math.isnan(pearson([0.5, 0.5], [0.1, 0.9]))
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(pearson([1, 2, 3], [4, 4, 4]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_too_few_pairs_is_undefined():
    assert math.isnan(pearson([], []))
    assert math.isnan(pearson([0.5], [0.1]))
    assert math.isnan(spearman([0.5], [0.1]))
    assert pearson([1, 2], [1, 3]) == pytest.approx(1.0)  # two points: defined, and trivial
    assert math.isnan(pearson([1, 2], [1, 3], min_pairs=3))  # so evidence asks for three
    assert math.isnan(pearson([1], [1], min_pairs=0))  # never below two, whatever is asked
    assert pearson([1, 2, 3], [1, 3, 2], min_pairs=3) == pytest.approx(0.5)


def test_a_missing_value_makes_the_coefficient_unknown():
    assert math.isnan(pearson([1.0, 2, math.nan, 4], [1.0, 2, 3, 4]))
    assert math.isnan(pearson([1.0, 2, 3, 4], [1.0, np.nan, 3, 4]))
    assert math.isnan(spearman([1.0, 2, math.nan, 4], [1.0, 2, 3, 4]))


def test_mismatched_inputs_are_a_bug():
    with pytest.raises(ValueError, match="same length"):
        pearson([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="1-D"):
        spearman([[1, 2], [3, 4]], [[1, 2], [3, 4]])


def test_r_stays_within_its_range_and_nan_becomes_null():
    x = np.linspace(0.1, 0.3, 7)
    assert -1.0 <= pearson(x, 3 * x + 0.1) <= 1.0
    assert nan_to_none(math.nan) is None
    assert nan_to_none(0.25) == 0.25
