"""The fast planner (issue 14) picks exactly the plans of the planner before it.

`tests/planner/reference_search` is a frozen copy of Alg. 2 + 3 before the speed work; the
package's planner must return the same plan (partition, every worker's configuration,
prediction) for every budget, from the smallest footprint to the unconstrained plan's.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.profile import LayerProfile, ModelProfile
from planner.search import FerretPlanner
from planner.walk import Blocks, best_walk
from planner.worker_chain import ChainBuilder, build_chain, stage_models
from tests.planner.profiles import partitions, profiles
from tests.planner.reference_search import search as reference
from tests.planner.reference_search.worker_chain import build_chain as reference_chain
from tests.planner.reference_search.worker_chain import stage_model as reference_model


def random_profile(rng: np.random.Generator, num_layers: int) -> ModelProfile:
    """Layer times and sizes of the kinds the benchmarks use, or exact ties (uniform layers)."""
    kind = rng.integers(0, 3)
    if kind == 0:  # issue 14's random profiles
        fwd = rng.uniform(50e-6, 200e-6, num_layers)
        bwd = 2 * fwd
        w, a = rng.integers(1_000, 400_001, num_layers), rng.integers(1_000, 400_001, num_layers)
    elif kind == 1:  # log-normal times over orders of magnitude
        fwd = rng.lognormal(np.log(1e-3), 1.0, num_layers)
        bwd = fwd * rng.uniform(1.5, 2.5, num_layers)
        w, a = rng.integers(10_000, 10_000_000, num_layers), rng.integers(10_000, 10_000_000, num_layers)
    else:  # identical layers: ties everywhere
        fwd, bwd = np.full(num_layers, 1e-3), np.full(num_layers, 2e-3)
        w, a = np.full(num_layers, 100), np.full(num_layers, 10)
    layers = tuple(LayerProfile(f"l{i}", float(fwd[i]), float(bwd[i]), int(w[i]), int(a[i])) for i in range(num_layers))
    return ModelProfile("random", layers, source="synthetic")


def test_same_plans_as_before_on_random_cases():
    rng = np.random.default_rng(14)
    cases = 0
    for _ in range(60):
        profile = random_profile(rng, int(rng.integers(1, 25)))
        td = float(profile.t_fwd.max()) * float(rng.choice([0.2, 1.0, 3.0]))
        decay = float(rng.choice([0.0, 0.3, 1.0, 50.0]))
        new, old = FerretPlanner(profile, td, decay), reference.FerretPlanner(profile, td, decay)
        low, high = new.min_memory_bytes(), new.max_memory_bytes()
        assert (low, high) == (old.min_memory_bytes(), old.max_memory_bytes())
        budgets = {low - 1, low, high} | {int(b) for b in np.geomspace(low, high + 1, 6)}
        for budget in sorted(b for b in budgets if b > 0):
            got, expected = new.plan(budget), old.plan(budget)
            assert got.plan == expected.plan, (budget, got.log, expected.log)
            assert (got.feasible, got.memory_bytes) == (expected.feasible, expected.memory_bytes)
            cases += 1
    assert cases > 300


@settings(max_examples=30)
@given(profiles(max_layers=9), st.data())
def test_chains_are_the_chains_of_before(profile, data):
    part = data.draw(partitions(profile.num_layers))
    cr = data.draw(st.booleans())
    decay = data.draw(st.sampled_from([0.0, 1.0, 30.0, 1000.0]))
    got = build_chain(stage_models(profile, [part], (cr,), decay, 1.0)[0])
    expected = reference_chain(reference_model(profile, part, cr, decay, 1.0))
    for field in ("kinds", "stages", "accumulations", "memory"):
        assert np.array_equal(getattr(got, field), getattr(expected, field)), field
    # Sums may round differently in the last bit (a matrix product over other columns).
    assert np.allclose(got.ratios, expected.ratios, rtol=1e-12, atol=0.0)
    assert np.allclose(got.rates, expected.rates, rtol=1e-12, atol=0.0)


@settings(max_examples=25)
@given(profiles(min_layers=2, max_layers=12), st.data())
def test_a_partly_built_chain_bounds_what_the_whole_chain_reaches(profile, data):
    """`later_bound` after any number of steps is at least the best walk's rate."""
    part = data.draw(partitions(profile.num_layers))
    model = stage_models(profile, [part], (data.draw(st.booleans()),), 1.0, 1.0)[0]
    num_workers = data.draw(st.integers(1, 6))
    builder = ChainBuilder(model)
    blocks = Blocks(build_chain(model))
    chain = blocks.chain
    budgets = sorted({int(m) for m in chain.memory[:-1]} | {int(chain.memory[0]) * num_workers})
    while not builder.done:
        for budget in budgets:
            walk = best_walk(blocks, num_workers, budget)
            if walk is None:
                continue
            value = blocks.totals(walk, num_workers)[0]
            bound, built = builder.later_bound(budget, num_workers)
            assert value <= bound * (1 + 1e-9)
            assert built <= bound
        builder.advance()


def test_a_stopped_chain_resumes_into_the_same_chain():
    rng = np.random.default_rng(3)
    profile = random_profile(rng, 20)
    model = stage_models(profile, [(0, 3, 7, 12, 15, 20)], (True,), 1.0, 1.0)[0]
    builder = ChainBuilder(model)
    for _ in range(3):
        builder.advance()
    resumed, whole = builder.chain(), build_chain(model)
    assert np.array_equal(resumed.kinds, whole.kinds) and np.array_equal(resumed.memory, whole.memory)


@pytest.mark.parametrize("prune", [True, False])
def test_pruned_search_logs_what_it_skipped(prune):
    rng = np.random.default_rng(5)
    profile = random_profile(rng, 16)
    planner = FerretPlanner(profile, float(profile.t_fwd.max()))
    budget = (planner.min_memory_bytes() + planner.max_memory_bytes()) // 4
    line = planner.plan(budget, prune=prune).log[1]
    searched, skipped = (int(n) for n in re.findall(r"(?:searched|skipped) (\d+)", line))
    assert searched + skipped == sum(c.model.min_worker_bytes <= budget for c in planner.candidates)
    assert (skipped > 0) == prune
