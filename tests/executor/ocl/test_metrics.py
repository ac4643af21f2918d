"""SPEC §9 metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor.metrics import (
    a_auc,
    a_last,
    accuracy_gain_per_memory,
    adaptation_rate,
    compare_to_baseline,
    forgetting,
    online_accuracy,
    online_accuracy_curve,
    seen_accuracy_curve,
)


def test_online_accuracy_curve_by_hand():
    correct = np.array([True, False, True, True])
    np.testing.assert_allclose(online_accuracy_curve(correct), [100, 50, 200 / 3, 75])
    assert online_accuracy(correct) == 75.0


@given(st.lists(st.booleans(), min_size=1, max_size=50))
def test_online_curve_ends_at_the_online_accuracy(correct):
    curve = online_accuracy_curve(np.array(correct))
    assert math.isclose(curve[-1], online_accuracy(np.array(correct)))
    assert (curve >= 0).all() and (curve <= 100).all()


# Three checkpoints, two classes with 4 and 2 test rows; class 1 appears at the second checkpoint.
CORRECT = np.array([[4, 2], [2, 1], [3, 2]])
TOTAL = np.array([4, 2])
SEEN = np.array([[True, False], [True, True], [True, True]])


def test_test_accuracy_over_seen_classes_by_hand():
    curve = seen_accuracy_curve(CORRECT, TOTAL, SEEN)
    # 4/4 (class 1 not yet seen: its 2 correct rows do not count), 3/6, 5/6.
    np.testing.assert_allclose(curve, [100, 50, 500 / 6])
    assert a_last(curve) == pytest.approx(500 / 6)
    assert a_auc(curve) == pytest.approx((100 + 50 + 500 / 6) / 3)


def test_forgetting_by_hand():
    # Class 0: best earlier 100 %, final 75 % → 25. Class 1: best earlier 50 %, final 100 % → −50.
    assert forgetting(CORRECT, TOTAL, SEEN) == pytest.approx((25 - 50) / 2)
    assert forgetting(CORRECT[:1], TOTAL, SEEN[:1]) is None  # one checkpoint: nothing to forget


def test_no_seen_test_rows_gives_nan():
    curve = seen_accuracy_curve(np.zeros((1, 2)), np.array([0, 3]), np.array([[True, False]]))
    assert math.isnan(curve[0]) and math.isnan(a_auc(curve))


def test_accuracy_gain_per_memory():
    assert accuracy_gain_per_memory(60.0, 50.0, 2e6, 1e6) == pytest.approx(10 - math.log(2))
    assert accuracy_gain_per_memory(50.0, 50.0, 1e6, 1e6) == 0.0
    with pytest.raises(ValueError):
        accuracy_gain_per_memory(1, 1, 0, 1)
    summary = {"online_accuracy": 70.0, "test_accuracy": 40.0, "measured_peak_memory_bytes": 400}
    baseline = {"online_accuracy": 60.0, "test_accuracy": 45.0, "measured_peak_memory_bytes": 100}
    agm = compare_to_baseline(summary, baseline)
    assert agm["oagm"] == pytest.approx(10 - math.log(4)) and agm["tagm"] == pytest.approx(-5 - math.log(4))


def test_adaptation_rate_by_hand():
    arrival = np.array([0.0, 1.0, 2.0, 3.0])
    trained_at = np.array([0.0, 2.0, np.inf, 3.5])
    # T = 3 s span · 4/3 = 4 s; R = (e^0 + e^-1 + 0 + e^-0.5) / 4 with c = 1/s.
    expected = (1 + math.exp(-1) + math.exp(-0.5)) / 4
    assert adaptation_rate(arrival, trained_at, 1.0) == pytest.approx(expected)
    assert adaptation_rate(arrival, trained_at, 0.0) == pytest.approx(3 / 4)
    assert math.isnan(adaptation_rate(np.array([0.0]), np.array([0.0]), 1.0))
