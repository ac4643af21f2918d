"""Alg. 2 + 3 (SPEC §4): agreement with the literal loop, and every invariant of SPEC §4.2."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.closed_form import adaptation_rate, ceil_ratio, memory_bytes, stage_times
from planner.errors import ValidationError
from planner.profile import LayerProfile, ModelProfile
from planner.quantities import MAX_WORKERS
from planner.search import FerretPlanner, itersearch, minimal_budget, plan_ferret, search
from planner.worker_chain import build_chain, stage_model
from tests.planner.profiles import partitions, profiles, uniform_profile
from tests.planner.reference import (
    _lost,
    _mem,
    initial_plan,
    literal_choice,
    literal_trajectory,
    ratio,
    worker_steps,
)


def random_case(rng: np.random.Generator):
    L = int(rng.integers(1, 9))
    layers = tuple(
        LayerProfile(f"l{i}", float(rng.uniform(0.1, 2)), float(rng.uniform(0.1, 4)), int(rng.integers(1, 1000)),
                     int(rng.integers(1, 1000)))
        for i in range(L)
    )  # fmt: skip
    profile = ModelProfile("seeded", layers, source="synthetic")
    cuts = sorted(rng.choice(np.arange(1, L), size=int(rng.integers(0, L)), replace=False).tolist()) if L > 1 else []
    part = (0, *cuts, L)
    td = float(rng.choice([rng.uniform(0.5, 6), rng.uniform(0.05, 0.5)]))
    return profile, part, bool(rng.integers(0, 2)), float(rng.choice([0.0, 0.05, 0.3, 2.0])), td


def test_search_equals_the_literal_n_worker_loop():
    """The chain + closed-form interleaving picks exactly what SPEC §4.1's loop over all N
    workers picks, for every budget along the way."""
    rng = np.random.default_rng(20250)
    for _ in range(60):
        profile, part, cr, decay, td = random_case(rng)
        N = ceil_ratio(sum(stage_times(profile, part)), td)
        trajectory = literal_trajectory(profile, initial_plan(part, N, cr, td, decay))
        mems = [m for _, m, _ in trajectory]
        picked = rng.choice(mems, size=min(len(mems), 8), replace=False).tolist()
        budgets = {int(x) for x in rng.uniform(min(mems) * 0.9, max(mems) * 1.1, 5)} | set(picked)
        for B in sorted(budgets):
            expected = literal_choice(trajectory, B)
            got = itersearch(profile, part, td, B, cr, decay)
            if expected is None:
                assert not got.feasible
                assert got.min_memory_bytes == min(mems)
                continue
            assert got.feasible
            assert got.plan.workers == expected[2].workers
            assert got.memory_bytes == expected[1]
            assert got.adaptation_rate == pytest.approx(expected[0], rel=1e-9)


@settings(max_examples=40)
@given(profiles(max_layers=7), st.data())
def test_chain_takes_the_best_recomputed_step_every_time(profile, data):
    part = data.draw(partitions(profile.num_layers))
    cr = data.draw(st.booleans())
    decay = data.draw(st.sampled_from([0.0, 1.0, 30.0]))
    chain = build_chain(stage_model(profile, part, cr, decay, 1.0))
    plan = initial_plan(part, 1, cr, 1.0, decay)
    for k in range(chain.length - 1):  # the last step is S4, checked below
        state = plan.__class__(**{**plan.__dict__, "workers": (chain.config(k, 0),)})
        w = state.workers[0]
        ratios = [
            ratio(_mem(profile, state, w) - _mem(profile, state, new), _lost(profile, state, w, new))
            for _, _, new in worker_steps(state, 0, allow_removal=True)
        ]
        best = max(ratios)
        assert chain.ratios[k] == pytest.approx(best, rel=1e-9) or chain.ratios[k] == best
        assert chain.memory[k] == _mem(profile, state, w)
        assert chain.rates[k] == pytest.approx(_rate_of(profile, state), rel=1e-9)
    assert chain.kinds[-1] == 4 and chain.memory[-1] == 0


def _rate_of(profile, plan):
    return adaptation_rate(profile, plan)


def test_rate_can_rise_along_the_trajectory():
    """docs/planner.md §2: the literal first fit would let a larger budget rate lower."""
    vals = [(1.9, 2.7, 67, 5), (1.2, 2.3, 64, 84), (1.1, 1.9, 87, 60), (0.5, 2.7, 53, 9), (1.8, 0.9, 84, 98),
            (1.2, 1.2, 24, 10), (0.5, 0.9, 16, 23), (1.3, 2.7, 17, 55), (0.6, 2.9, 6, 99), (0.8, 2.4, 1, 96),
            (1.1, 2.9, 59, 63)]  # fmt: skip
    profile = ModelProfile("rise", tuple(LayerProfile(f"l{i}", *v) for i, v in enumerate(vals)), source="synthetic")
    part = tuple(range(12))
    chain = build_chain(stage_model(profile, part, False, 0.01, 1.0))
    assert (chain.kinds[36], chain.stages[36]) == (3, 5)
    assert (chain.memory[36], chain.memory[37]) == (1153, 1119)
    assert chain.rates[37] > chain.rates[36]
    trajectory = literal_trajectory(profile, initial_plan(part, 1, False, 100.0, 0.01))
    first_fit = next(r for r, m, _ in trajectory if m <= 1153)
    assert first_fit == pytest.approx(0.0225583734, rel=1e-8)
    for budget in (1153, 1119):
        got = itersearch(profile, part, 100.0, budget, False, 0.01)
        assert got.memory_bytes == 1119
        assert got.adaptation_rate == pytest.approx(0.0226115310, rel=1e-8)


def test_recomputation_keeps_n_and_never_wins_unconstrained():
    profile = uniform_profile(4, tf=1.0, tb=2.0)
    part = (0, 2, 4)
    td = 1.55  # SPEC's N: ⌈6/1.55⌉ = 4 without and ⌈8/1.55⌉ = 6 with recomputation
    plain = itersearch(profile, part, td, None, False, 0.1)
    recomputed = itersearch(profile, part, td, None, True, 0.1)
    assert plain.plan.num_workers == recomputed.plan.num_workers == 4
    assert recomputed.adaptation_rate < plain.adaptation_rate
    best = search(profile, part, td, None, 0.1)
    assert not any(w.recompute for w in best.plan.workers)


def test_infeasible_budget_names_the_smallest_footprint():
    profile = uniform_profile(5)
    floor = minimal_budget(profile, 0.5)
    assert floor == 5 * 100 + 10  # W + â_0: one worker, one stage, recomputation
    result = plan_ferret(profile, 0.5, budget_bytes=floor - 1)
    assert not result.feasible and not result.plan.feasible
    assert result.min_memory_bytes == result.memory_bytes == floor
    assert len(result.plan.active_workers) == 1
    assert plan_ferret(profile, 0.5, budget_bytes=floor).feasible
    with pytest.raises(ValidationError, match="budget"):
        plan_ferret(profile, 0.5, budget_bytes=0)
    with pytest.raises(ValidationError, match="arrival interval"):
        plan_ferret(profile, -1.0)


def _no_technique(plan) -> bool:
    return all(w.active and not w.recompute and set(w.accumulation) == {1} and set(w.omission) == {0}
               for w in plan.workers)  # fmt: skip


@st.composite
def planning_cases(draw, max_layers=64):
    profile = draw(profiles(max_layers=max_layers))
    td = float(profile.t_fwd.max()) * draw(st.sampled_from([0.05, 0.3, 1.0, 4.0]))
    decay = draw(st.sampled_from([0.0, 1.0, 50.0]))
    fractions = draw(st.lists(st.floats(0.0, 1.2), min_size=2, max_size=6))
    return profile, td, decay, fractions


@settings(max_examples=25)
@given(planning_cases())
def test_plan_invariants(case):
    profile, td, decay, fractions = case
    if ceil_ratio(float(profile.t_fwd.sum() + profile.t_bwd.sum()), td) > MAX_WORKERS:  # the one-stage candidate's N
        with pytest.raises(ValidationError, match="workers, more than the"):
            FerretPlanner(profile, td, decay)
        return
    planner = FerretPlanner(profile, td, decay)
    unconstrained = planner.plan(None)
    floor = planner.min_memory_bytes()
    assert floor == int(profile.param_bytes.sum()) + int(profile.act_bytes[0])
    top = unconstrained.memory_bytes
    # at M = ∞ no technique is applied, and N is SPEC's ⌈(tf + tb)/td⌉
    assert _no_technique(unconstrained.plan)
    tf, tb = stage_times(profile, unconstrained.plan.partition)
    assert unconstrained.plan.num_workers == ceil_ratio(tf + tb, td)
    budgets = sorted({max(1, int(floor + f * (top - floor))) for f in fractions} | {floor - 1 if floor > 1 else 1})
    previous = -1.0
    for B in budgets:
        result = planner.plan(B)
        plan = result.plan
        plan.validate(profile.num_layers)  # contiguous non-empty stages covering every layer; c^a ≥ 1; c^o bounds
        assert plan.predicted is not None
        assert plan.predicted.adaptation_rate == result.adaptation_rate == adaptation_rate(profile, plan)
        assert plan.predicted.memory_bytes == result.memory_bytes == memory_bytes(profile, plan)
        assert result.min_memory_bytes == floor
        assert result.feasible == (floor <= B)  # infeasible exactly below the smallest footprint
        if not result.feasible:
            continue
        assert result.memory_bytes <= B
        assert plan.active_workers
        assert result.adaptation_rate >= previous * (1 - 1e-9)  # non-decreasing in the budget
        previous = result.adaptation_rate
        assert result.adaptation_rate <= unconstrained.adaptation_rate * (1 + 1e-9)
    assert planner.plan(top).adaptation_rate == pytest.approx(unconstrained.adaptation_rate, rel=1e-9)


@settings(max_examples=20)
@given(planning_cases(max_layers=20))
def test_pruning_changes_nothing(case):
    profile, td, decay, fractions = case
    planner = FerretPlanner(profile, td, decay)
    floor, top = planner.min_memory_bytes(), planner.plan(None).memory_bytes
    for f in fractions:
        B = max(floor, int(floor + f * (top - floor)))
        assert planner.plan(B).plan == planner.plan(B, prune=False).plan


@settings(max_examples=15)
@given(profiles(max_layers=30), st.sampled_from([0.2, 1.0, 3.0]))
def test_unconstrained_plan_is_the_best_no_technique_pipeline(profile, factor):
    td = float(profile.t_fwd.max()) * factor
    planner = FerretPlanner(profile, td)
    best = max(
        (ceil_ratio(c.model.tf + c.model.tb, td) * float(c.model.coeff.sum()), -c.order)
        for c in planner.candidates
        if not c.model.recompute
    )
    assert planner.plan(None).adaptation_rate == pytest.approx(best[0], rel=1e-12)


@settings(max_examples=15)
@given(planning_cases(max_layers=12))
def test_rate_bounds_hold_for_every_candidate(case):
    from planner.walk import best_walk

    profile, td, decay, fractions = case
    planner = FerretPlanner(profile, td, decay)
    floor, top = planner.min_memory_bytes(), planner.plan(None).memory_bytes
    for f in fractions:
        B = max(floor, int(floor + f * (top - floor)))
        fitting = [c for c in planner.candidates if c.model.min_worker_bytes <= B]
        bounds = planner.envelope().bounds(np.array([c.order for c in fitting]), B)
        for cand, bound in zip(fitting, bounds, strict=True):
            blocks = planner.blocks(cand)
            walk = best_walk(blocks, cand.num_workers, B)
            value = blocks.totals(walk, cand.num_workers)[0]
            assert value <= bound * (1 + 1e-9)


def test_more_workers_than_ferret_runs_are_refused_up_front():
    # Hypothesis found it: 0.0625 s of cycle every 0.5 µs is 125,020 workers, whose plans would
    # all fail `Plan.validate`; the planner says so when it is built, in one line.
    profile = ModelProfile("one", (LayerProfile("l0", 1e-5, 0.0625, 1000, 1000),))
    with pytest.raises(ValidationError, match="needs 125020 workers, more than the 4096 ferret runs"):
        FerretPlanner(profile, 5e-7)
    FerretPlanner(profile, (1e-5 + 0.0625) / MAX_WORKERS * 1.001)  # within the cap: plans
