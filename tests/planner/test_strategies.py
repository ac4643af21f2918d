"""The strategies' closed forms (docs/planner.md §5) by hand, and their budget behaviour."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.closed_form import arrival_limited_rate, stage_times
from planner.errors import ValidationError
from planner.placement import owner_placement
from planner.plan import Plan, WorkerConfig, default_placement
from planner.strategies import STRATEGIES, make_plan, make_plans, minimal_budget, predict
from tests.planner.profiles import hand_profile, profiles

E = math.exp
C = 0.1
P3 = (0, 1, 2, 3)  # one layer per stage: tf = 2, tb = 3, cycle 5; stage bytes 110, 220, 55
S = (100 / 350, 200 / 350, 50 / 350)
F3_ONE_WORKER = (S[0] * E(-1.5) + S[1] * E(-1.2) + S[2] * E(-0.9)) / 5


def plan_of(strategy, td=1.0, budget=None, **options):
    return make_plan(strategy, hand_profile(), td, C, budget, partition=P3, **options)


def test_registry_names():
    assert list(STRATEGIES) == ["ferret", "pipedream", "pipedream-2bw", "gpipe", "1f1b"]


def test_pipedream_by_hand():
    r = plan_of("pipedream")
    assert r.plan.num_workers == 1 and r.plan.workers[0] == WorkerConfig.default(0, 3)
    assert r.adaptation_rate == pytest.approx(F3_ONE_WORKER, rel=1e-12)
    assert r.memory_bytes == 3 * 110 + 2 * 220 + 55
    # arrivals slower than the cycle: it can only absorb what arrives (factor cycle/td = 1/2)
    slow = plan_of("pipedream", td=10.0)
    assert slow.adaptation_rate == pytest.approx(F3_ONE_WORKER / 2, rel=1e-12)
    assert arrival_limited_rate(hand_profile(), slow.plan) == pytest.approx(slow.adaptation_rate, rel=1e-12)


def test_pipedream_2bw_by_hand():
    r = plan_of("pipedream-2bw")
    assert r.plan.workers[0].accumulation == (2, 2, 2)  # max(1, P-1)
    assert r.memory_bytes == 2 * 110 + 2 * 220 + 55  # two versions, one at the last stage
    assert r.adaptation_rate == pytest.approx(F3_ONE_WORKER * (1 + E(-0.5)) / 2, rel=1e-12)


def test_gpipe_and_1f1b_by_hand():
    for name, memory in (("gpipe", 350 + 2 * (10 + 20 + 5)), ("1f1b", 350 + 2 * 10 + 2 * 20 + 1 * 5)):
        r = plan_of(name, minibatch=2)
        assert r.plan.minibatch == 2
        # pass (2 + 3 - 1)·5 = 20 s; passes 20 s apart; waits 0 and 1 s
        assert r.adaptation_rate == pytest.approx(E(-2.0) * (1 + E(-0.1)) / 20, rel=1e-12)
        assert r.memory_bytes == memory


def test_sync_arrival_bound_period():
    # td = 30 s: a batch of 2 takes 60 s to fill, longer than the 20 s pass
    r = plan_of("gpipe", td=30.0, minibatch=2)
    assert r.adaptation_rate == pytest.approx(E(-2.0) * (1 + E(-3.0)) / 60, rel=1e-12)


def _sync_reference(tf, tb, P, B, td, c):
    passing = (B + P - 1) * (tf + tb)
    return E(-c * passing) * sum(E(-c * b * td) for b in range(B)) / max(B * td, passing)


@settings(max_examples=20)
@given(st.sampled_from([0.05, 0.5, 3.0]), st.sampled_from([0.0, 0.1, 2.0]))
def test_sync_chooses_the_best_minibatch(td, c):
    tf, tb = stage_times(hand_profile(), P3)
    expected = max(range(1, 65), key=lambda B: (_sync_reference(tf, tb, 3, B, td, c), -B))
    r = make_plan("1f1b", hand_profile(), td, c, None, partition=P3, max_minibatch=64)
    assert r.plan.minibatch == expected
    assert r.adaptation_rate == pytest.approx(_sync_reference(tf, tb, 3, expected, td, c), rel=1e-9)


def test_gpipe_minibatch_shrinks_to_fit_the_budget():
    free = make_plan("gpipe", hand_profile(), 0.05, 0.001, None, partition=P3)
    assert free.plan.minibatch > 2
    tight = make_plan("gpipe", hand_profile(), 0.05, 0.001, 350 + 35 * 2, partition=P3)
    assert tight.feasible and tight.plan.minibatch == 2 and tight.memory_bytes == 420


@settings(max_examples=12)
@given(profiles(max_layers=16), st.sampled_from([0.3, 1.0, 4.0]), st.floats(0.0, 1.5))
def test_every_strategy_respects_budgets(profile, factor, fraction):
    td = float(profile.t_fwd.max()) * factor
    for name in STRATEGIES:
        floor = minimal_budget(profile, td, strategy=name)
        top = make_plan(name, profile, td).memory_bytes
        budget = max(1, int(floor + fraction * (top - floor)))
        r = make_plan(name, profile, td, budget_bytes=budget)
        r.plan.validate(profile.num_layers)
        assert r.min_memory_bytes == floor
        assert r.feasible == (budget >= floor)
        assert predict(profile, r.plan) == (r.adaptation_rate, r.memory_bytes)
        if r.feasible:
            assert r.memory_bytes <= budget
        below = make_plan(name, profile, td, budget_bytes=floor - 1) if floor > 1 else None
        if below is not None:
            assert not below.feasible and below.memory_bytes == floor


def test_options_are_checked():
    with pytest.raises(ValidationError, match="takes no option minibatch"):
        plan_of("ferret", minibatch=3)
    with pytest.raises(ValidationError, match="partition"):
        make_plan("pipedream", hand_profile(), 1.0, partition=(0, 2))
    with pytest.raises(ValidationError, match="minibatch must be"):
        plan_of("gpipe", minibatch=0)
    with pytest.raises(ValidationError, match="unknown strategy"):
        make_plan("zero-bubble", hand_profile(), 1.0)
    with pytest.raises(ValidationError, match="budget"):
        make_plan("pipedream", hand_profile(), 1.0, budget_bytes=-5)
    with pytest.raises(ValidationError, match="devices"):
        plan_of("pipedream", num_devices=0)


def test_devices_option_puts_each_stage_on_one_owner():
    r = plan_of("ferret", num_devices=2)
    plan = r.plan
    assert plan.placement == owner_placement(hand_profile(), plan.partition, plan.num_workers, 2)
    owners = plan.placement[0]
    assert all(row == owners for row in plan.placement)  # a stage never splits across devices
    assert list(owners) == sorted(owners) and set(owners) == {0, 1}  # contiguous blocks on both
    for name in ("pipedream", "pipedream-2bw", "gpipe"):
        placed = plan_of(name, num_devices=2).plan
        assert all(row == placed.placement[0] for row in placed.placement)
    assert plan_of("ferret").plan.num_devices == plan_of("ferret").plan.num_workers * 3


def test_predict_dispatches_on_the_plan_strategy():
    w = WorkerConfig.default(0, 3)
    pd = Plan("pipedream", P3, (w,), default_placement(1, 3), 1.0, decay_per_s=C)
    assert predict(hand_profile(), pd)[0] == pytest.approx(F3_ONE_WORKER, rel=1e-12)
    unknown = Plan("hanayo", P3, (w,), default_placement(1, 3), 1.0)
    with pytest.raises(ValidationError, match="unknown strategy"):
        predict(hand_profile(), unknown)
    with pytest.raises(ValidationError, match="partition"):
        predict(hand_profile().__class__("x", hand_profile().layers[:2]), pd)


def test_ferret_beats_or_matches_one_worker_pipedream_unconstrained():
    profile = hand_profile()
    td = float(np.max(profile.t_fwd))
    assert make_plan("ferret", profile, td).adaptation_rate >= make_plan("pipedream", profile, td).adaptation_rate


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_make_plans_equals_make_plan_per_budget(strategy):
    profile = hand_profile()
    floor = minimal_budget(profile, 0.05, 0.5, strategy=strategy)
    budgets = [floor - 1, floor, 2 * floor, None]
    shared = make_plans(strategy, profile, 0.05, budgets, decay_per_s=0.5)
    assert shared == [make_plan(strategy, profile, 0.05, 0.5, b) for b in budgets]
    assert [r.feasible for r in shared] == [False, True, True, True]
