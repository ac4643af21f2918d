"""The compiled walk (`walk` in planner/_s3_kernel.c) is `planner.walk.best_walk` with its total
(`Blocks.totals`), bit for bit: on random chains, worker counts and budgets from below the
smallest footprint to above the largest, ties (identical layers, no decay) included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import s3_batch
from planner.walk import Blocks, best_walk, best_walk_total
from planner.worker_chain import build_chain, stage_models
from tests.planner.profiles import partitions, profiles, uniform_profile
from tests.planner.test_s3_kernel import needs_kernel


def _both_ways(blocks: Blocks, num_workers: int, budget: int):
    kernel = s3_batch.kernel
    compiled = best_walk_total(blocks, num_workers, budget)
    s3_batch.kernel = None
    try:
        reference = best_walk_total(blocks, num_workers, budget)
    finally:
        s3_batch.kernel = kernel
    return compiled, reference


def _check(blocks: Blocks, num_workers: int, budgets: list[int]) -> int:
    """Compare both ways on every budget; return how many budgets found a walk."""
    fitting = 0
    for budget in budgets:
        compiled, reference = _both_ways(blocks, num_workers, budget)
        assert compiled == reference, budget
        if reference is not None:
            assert np.float64(compiled[1]).tobytes() == np.float64(reference[1]).tobytes()
            assert reference[0] == best_walk(blocks, num_workers, budget)
            fitting += 1
    return fitting


def _budgets(blocks: Blocks, num_workers: int, draw) -> list[int]:
    memory = blocks.chain.memory
    low, high = int(memory[-2]), num_workers * int(memory[0])
    chosen = draw(st.lists(st.integers(max(1, low - 10), high + 10), min_size=1, max_size=12))
    # Exact footprints of positions too: each worker at a state, the others at the start.
    exact = [int(m) + (num_workers - 1) * int(memory[0]) for m in memory[:: max(1, len(memory) // 8)]]
    return chosen + exact


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_kernel_walks_as_best_walk_bit_for_bit(data):
    profile = data.draw(profiles(min_layers=2, max_layers=40))
    decay = data.draw(st.sampled_from([0.0, 0.3, 1.0, 30.0]))
    part = data.draw(partitions(profile.num_layers))
    recompute = data.draw(st.booleans())
    (model,) = stage_models(profile, [part], (recompute,), decay, 1.0)
    blocks = Blocks(build_chain(model))
    num_workers = data.draw(st.integers(1, 9))
    _check(blocks, num_workers, _budgets(blocks, num_workers, data.draw))


@needs_kernel
def test_the_kernel_walks_chains_of_ties():
    """Identical layers without decay: equal ratios and rates everywhere, so every choice rests on
    the first-of-equals rules."""
    for decay in (0.0, 1.0):
        (model,) = stage_models(uniform_profile(12), [tuple(range(13))], (False,), decay, 1.0)
        blocks = Blocks(build_chain(model))
        for num_workers in (1, 2, 5):
            memory = blocks.chain.memory
            budgets = list(range(int(memory[-2]) - 2, num_workers * int(memory[0]) + 3, 7))
            assert _check(blocks, num_workers, budgets) > 0
