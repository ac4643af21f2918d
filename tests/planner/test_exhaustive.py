"""The greedy against the exact optimum on tiny models (gaps recorded in docs/planner.md §7)."""

import numpy as np
import pytest

from planner.closed_form import ceil_ratio, stage_times
from planner.exhaustive import all_partitions, exhaustive_optimum, worker_options
from planner.profile import LayerProfile, ModelProfile
from planner.search import FerretPlanner


def test_enumeration_covers_the_space():
    assert list(all_partitions(3)) == [(0, 3), (0, 1, 3), (0, 2, 3), (0, 1, 2, 3)]
    options = worker_options(3, False)
    assert len(options) == 2 * 3 * 1 * 2 * 1  # stage 0: c^a ≤ 2, c^o ≤ 2; stage 1: c^o ≤ 1
    assert all(o.accumulation[2] == 1 and o.omission[2] == 0 for o in options)


def tiny_case(rng):
    L = int(rng.integers(1, 4))
    layers = tuple(
        LayerProfile(f"l{i}", float(rng.uniform(0.2, 2)), float(rng.uniform(0.2, 3)), int(rng.integers(10, 500)),
                     int(rng.integers(10, 500)))
        for i in range(L)
    )  # fmt: skip
    profile = ModelProfile("tiny", layers, source="synthetic")
    slowest = max(sum(stage_times(profile, (0, L))), 1e-9)
    td = slowest / float(rng.uniform(1.0, 2.9))  # at most 3 workers for any partition
    return profile, td, float(rng.choice([0.05, 0.2, 1.0]))


def test_greedy_is_feasible_whenever_anything_is_and_never_beats_the_optimum():
    rng = np.random.default_rng(7)
    gaps = []
    for _ in range(25):
        profile, td, decay = tiny_case(rng)
        planner = FerretPlanner(profile, td, decay)
        top = planner.plan(None).memory_bytes
        for budget in np.linspace(planner.min_memory_bytes() * 0.95, top, 5).astype(int).tolist():
            optimum = exhaustive_optimum(profile, td, budget, decay)
            greedy = planner.plan(budget)
            assert greedy.feasible == (optimum.plan is not None)
            if optimum.plan is None:
                continue
            for w in optimum.plan.workers:
                assert ceil_ratio(sum(stage_times(profile, optimum.plan.partition)), td) == optimum.plan.num_workers
                assert w.accumulation[-1] == 1
            assert greedy.memory_bytes <= budget
            assert greedy.adaptation_rate <= optimum.adaptation_rate * (1 + 1e-9)
            gaps.append(1 - greedy.adaptation_rate / optimum.adaptation_rate)
    assert len(gaps) > 50
    # The greedy is a heuristic: the gap is measured, not bounded; it must not be absurd.
    assert np.median(gaps) < 0.05
    print(f"\ngreedy optimality gap on {len(gaps)} tiny cases: mean {np.mean(gaps):.2%}, max {np.max(gaps):.2%}")


def test_unconstrained_greedy_is_optimal():
    rng = np.random.default_rng(11)
    for _ in range(10):
        profile, td, decay = tiny_case(rng)
        optimum = exhaustive_optimum(profile, td, None, decay)
        greedy = FerretPlanner(profile, td, decay).plan(None)
        assert greedy.adaptation_rate == pytest.approx(optimum.adaptation_rate, rel=1e-9)
