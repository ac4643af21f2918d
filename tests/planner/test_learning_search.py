"""Planning for learning: latest-weights candidates, their (F4) footprint, the choice by score."""

from __future__ import annotations

import pytest

from planner.closed_form import memory_bytes, stage_sizes
from planner.learning import LearningModel, learning_rate
from planner.learning_search import LearningPlanner, latest_plan
from planner.plan import Plan, WorkerConfig, default_placement
from planner.search import FerretPlanner
from tests.planner.profiles import hand_profile, uniform_profile


def test_latest_weights_footprint_is_one_version_and_the_kept_inputs_per_worker():
    # hand profile, one layer per stage: w = 100, 200, 50; a = 10, 20, 5; s = 0 (one layer)
    worker = WorkerConfig(0, True, (1, 1, 1), (0, 0, 0), "latest")
    plan = Plan(
        "ferret",
        (0, 1, 2, 3),
        (worker, worker.__class__(1, True, (1, 1, 1), (0, 0, 0), "latest")),
        default_placement(2, 3),
        1.0,
    )
    w = stage_sizes(hand_profile(), plan.partition)[0]
    per_worker = int(w.sum()) + 3 * 10 + 2 * 20 + 1 * 5
    assert memory_bytes(hand_profile(), plan) == 2 * per_worker
    # the same workers stashing: 3, 2, 1 versions of (w + a)
    stashed = Plan(
        "ferret",
        (0, 1, 2, 3),
        tuple(WorkerConfig(n, True, (1,) * 3, (0,) * 3) for n in range(2)),
        default_placement(2, 3),
        1.0,
    )
    assert memory_bytes(hand_profile(), stashed) == 2 * (3 * 110 + 2 * 220 + 1 * 55)
    # two layers in a stage: the kept input is the first layer's output, a − s
    two = Plan("ferret", (0, 2, 3), (WorkerConfig(0, True, (1, 1), (0, 0), "latest"),), default_placement(1, 2), 1.0)
    assert memory_bytes(hand_profile(), two) == 350 + 2 * 10 + 1 * 5


def test_latest_plan_runs_enough_workers_for_the_recomputed_forward():
    plan = latest_plan(hand_profile(), (0, 1, 2, 3), 2.0)
    # tf = 2, tb = 3: cycle 2·2 + 3 = 7 → N = ⌈7/2⌉ = 4
    assert plan.num_workers == 4 and all(w.latest and w.recompute and w.active for w in plan.workers)


def _planner(model):
    return LearningPlanner(hand_profile(), 2.0, model)


def test_the_learning_objective_picks_latest_weights_when_stale_gradients_cost_most():
    plan = _planner(LearningModel(0.0, {"stashed": 1.0, "latest": 0.0})).plan(None).plan
    assert all(w.latest for w in plan.workers if w.active)
    plan = _planner(LearningModel(0.0, {"stashed": 0.0, "latest": 1.0})).plan(None).plan
    assert not any(w.latest for w in plan.workers)


def test_the_chosen_plan_has_the_best_score_of_every_candidate_and_fits_the_budget():
    model = LearningModel(0.01, {"stashed": 0.1, "latest": 0.05})
    planner = _planner(model)
    paper = FerretPlanner(hand_profile(), 2.0).plan(None)
    budget = paper.memory_bytes // 2
    for b in (None, budget):
        result = planner.plan(b)
        best = max(c.score for c in planner.candidates(b))
        assert learning_rate(hand_profile(), result.plan, model) == pytest.approx(best)
        assert b is None or result.memory_bytes <= b
        assert result.plan.predicted is not None and result.plan.predicted.memory_bytes == result.memory_bytes


def test_an_impossible_budget_is_the_papers_infeasible_answer():
    result = _planner(LearningModel(0.0, {"stashed": 0.1, "latest": 0.1})).plan(10)
    assert not result.feasible and result.min_memory_bytes > 10


@pytest.mark.parametrize("fraction", [None, 0.6, 0.3])
@pytest.mark.parametrize("profile", [hand_profile(), uniform_profile(6, tf=1.0, tb=2.0, w=100, a=40)])
def test_the_paper_candidates_are_each_partitions_own_alg2_plan(profile, fraction):
    # One shared FerretPlanner gives, per (partition, c^r), the plan a planner of that pair alone makes.
    shared = FerretPlanner(profile, 2.0)
    top = shared.plan(None).memory_bytes
    budget = None if fraction is None else int(top * fraction)
    expected = []
    for partition in shared.partitions:
        for recompute in (False, True):
            alone = FerretPlanner(profile, 2.0, partitions=[partition], recompute=(recompute,)).plan(budget)
            if alone.feasible:
                expected.append(alone.plan.workers)
    assert [p.workers for p in shared.candidate_plans(budget)] == expected
