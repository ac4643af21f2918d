"""The learning-aware score (planner/learning.py): its parts by hand, its limits, the model file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.errors import ValidationError
from planner.learning import BUILTIN, LearningModel, beside, datum_path, learning_rate, model_for, staleness
from planner.plan import REMOVED, Plan, WorkerConfig, default_placement
from tests.planner.profiles import hand_profile

# hand profile: forwards 1, 2, 0.5; backwards 2, 3, 1 (one layer per stage)


def _plan(workers, td=2.0, partition=(0, 1, 2, 3)):
    P = len(partition) - 1
    return Plan("ferret", partition, tuple(workers), default_placement(len(workers), P), td)


def _w(offset, P=3, recompute=False, acc=None, omit=None, kind="stashed"):
    return WorkerConfig(offset, recompute, acc or (1,) * P, omit or (0,) * P, kind)


def test_delay_window_and_staleness_by_hand():
    plan = _plan([_w(0), _w(1), _w(2), _w(3)], td=2.0)
    path = datum_path(hand_profile(), plan, plan.workers[0])
    # forward through all 3.5; backward from the top down to i: 6, 4, 1
    assert path.delay_s.tolist() == [9.5, 7.5, 4.5]
    # forward from i to the top plus backward down to i
    assert path.window_s.tolist() == [9.5, 6.5, 1.5]
    assert path.cycle_s == 2.0 + 3.0
    # every stage steps once per arrival (td = 2): τ = window / td
    assert staleness(hand_profile(), plan, plan.workers[0]).tolist() == [4.75, 3.25, 0.75]


def test_recomputation_accumulation_and_omission_enter_the_path():
    plan = _plan([_w(0, recompute=True, acc=(3, 1, 1), omit=(0, 1, 0)), _w(1)], td=2.0)
    w = plan.workers[0]
    path = datum_path(hand_profile(), plan, w)
    # recomputation adds each stage's forward to the way down; the group of 3 waits (3−1)/2 · N·td
    assert path.delay_s.tolist() == [3.5 + 3 + 5 + 1.5 + 4.0, 3.5 + 5 + 1.5, 3.5 + 1.5]
    # stage 0 steps every 3rd backward of worker 0 and sees half of its data (omission above it)
    rates = staleness(hand_profile(), plan, w) / path.window_s
    assert rates.tolist() == pytest.approx([(1 / 2 / 3 + 1) / 4, (1 / 2 + 1) / 4, 2 / 4])


def test_without_discounts_the_score_is_the_arrival_rate_of_a_plan_that_trains_everything():
    free = LearningModel(0.0, {"stashed": 0.0, "latest": 0.0})
    plan = _plan([_w(n) for n in range(3)], td=2.0)  # cycle 5 ≤ N·td = 6
    assert learning_rate(hand_profile(), plan, free) == pytest.approx(1 / 2.0)
    removed = _plan([_w(0), _w(1), WorkerConfig(REMOVED, False, (1,) * 3, (0,) * 3)], td=2.0)
    assert learning_rate(hand_profile(), removed, free) == pytest.approx(2 / 3 / 2.0)
    slow = _plan([_w(0)], td=2.0)  # one worker, cycle 5 > td: it trains one datum per 5 s
    assert learning_rate(hand_profile(), slow, free) == pytest.approx(1 / 5.0)


def test_staleness_discount_applies_by_backward_weights_kind():
    model = LearningModel(0.0, {"stashed": 0.1, "latest": 0.0})
    stashed = _plan([_w(n, recompute=True) for n in range(4)])
    latest = _plan([_w(n, recompute=True, kind="latest") for n in range(4)])
    shares = np.array([100, 200, 50]) / 350
    tau = staleness(hand_profile(), stashed, stashed.workers[0])
    expected = float(np.sum(shares * np.exp(-0.1 * tau))) * 4 / max(2.0 * 4, 2 + 3 + 2)
    assert learning_rate(hand_profile(), stashed, model) == pytest.approx(expected)
    assert learning_rate(hand_profile(), latest, model) == pytest.approx(1 / 2.0)


def test_delay_discount_counts_arrivals():
    model = LearningModel(0.01, {"stashed": 0.0, "latest": 0.0})
    plan = _plan([_w(n) for n in range(3)], td=2.0)
    shares = np.array([100, 200, 50]) / 350
    delays = np.array([9.5, 7.5, 4.5]) / 2.0
    assert learning_rate(hand_profile(), plan, model) == pytest.approx(
        float(np.sum(shares * np.exp(-0.01 * delays))) / 2
    )


def test_model_file_round_trip_and_validation(tmp_path):
    model = LearningModel(0.004, {"stashed": 0.05, "latest": 0.02}, "test", {"runs": 3})
    path = tmp_path / "p.learning.json"
    model.save(path)
    assert LearningModel.load(path) == model
    assert beside(tmp_path / "p.json") == path
    assert model_for(tmp_path / "p.json") == model
    assert model_for(tmp_path / "other.json") is BUILTIN
    with pytest.raises(ValidationError, match="one discount per kind"):
        LearningModel(0.0, {"stashed": 0.1}).validate()
    with pytest.raises(ValidationError, match="delay_per_arrival"):
        LearningModel(-1.0, {"stashed": 0.0, "latest": 0.0}).validate()
    assert math.isfinite(learning_rate(hand_profile(), _plan([_w(0)]), BUILTIN))


def test_fit_recovers_the_discounts_that_made_the_observations():
    from planner.learning import Observation, fit

    truth = LearningModel(0.02, {"stashed": 0.08, "latest": 0.03})
    plans = [_plan([_w(n) for n in range(k)], td=td) for k, td in ((3, 2.0), (4, 1.5), (6, 1.0))] + [
        _plan([_w(n, recompute=True, kind="latest") for n in range(k)], td=td) for k, td in ((4, 2.0), (8, 1.0))
    ]
    plans.append(_plan([_w(n, P=1) for n in range(5)], td=1.0, partition=(0, 3)))
    obs = [Observation(p, learning_rate(hand_profile(), p, truth) * p.arrival_interval_s) for p in plans]
    model = fit(hand_profile(), obs, "synthetic")
    assert model.delay_per_arrival == pytest.approx(0.02, rel=1e-3)
    assert model.staleness == pytest.approx(truth.staleness, rel=1e-3)
    assert model.details["rms_error"] < 1e-6 and model.fitted_on == "synthetic"
    only_stashed = fit(hand_profile(), obs[:3] + obs[-1:])
    assert only_stashed.staleness["latest"] == 0.0 and only_stashed.details["fitted_kinds"] == ["stashed"]
