"""`jitter = "empirical"` with `jitter_block > 1`: the measured sequence drawn in blocks of
consecutive factors (a circular block bootstrap), one stream of blocks per device."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import FerretError
from planner.plan import WorkerConfig
from sim import MemoryTrace, SimConfig, simulate
from sim.arrivals import PoissonArrivals
from sim.costs import ProfileCosts
from sim.parts import Jitter
from tests.sim.builders import balanced_profile, make_plan
from tests.sim.native_digests import digest
from tests.sim.pure_python import run_pure
from tests.sim.scenarios import Scenario

BLOCKS = SimConfig(concurrency=2, slowdown=0.5, op_overhead_s=0.01, jitter="empirical", jitter_block=3)
SEQUENCE = (1.0, 2.0, 3.0)


def _ops(config, sequence, workers=2, samples=40, seed=0, interval=5.0):
    """(device, kind, duration) of every fwd/bwd row, in trace order."""
    profile = balanced_profile(2)
    plan = make_plan([WorkerConfig.default(n, 2) for n in range(workers)], 2, interval)
    costs = dataclasses.replace(
        ProfileCosts.from_profiles((profile,), plan.partition, config), jitter_sequence=sequence
    )
    trace = MemoryTrace()
    simulate(plan, profile, samples, seed=seed, config=config, trace=trace, costs=costs)
    return [(r.device, r.kind, r.t_end - r.t_start) for r in trace.events() if r.kind in ("fwd", "bwd")]


def test_one_device_gets_the_sequence_in_order_from_the_drawn_start():
    a, b, c = SEQUENCE
    jitter = Jitter(np.random.default_rng(5), 0.0, SEQUENCE, block=3, devices=1)
    starts = np.random.default_rng(5).integers(0, 3, 4096 // 3)[:4]  # a refill's starts, one per block
    draws = [jitter.draw(0) for _ in range(12)]
    for k, s in enumerate(starts.tolist()):  # each block: a, b, c rotated to its start (wrapping)
        assert draws[3 * k : 3 * k + 3] == [(a, b, c)[(s + i) % 3] for i in range(3)]


def test_every_device_of_a_twin_run_steps_through_the_sequence_in_blocks():
    # One datum at a time, one op at a time: each op's duration over its plain duration is its factor.
    plain = dataclasses.replace(BLOCKS, concurrency=1, slowdown=0.0, jitter="none", jitter_block=1)
    blocks = dataclasses.replace(plain, jitter="empirical", jitter_block=3)
    base, drawn = _ops(plain, ()), _ops(blocks, SEQUENCE)
    assert len(base) == len(drawn) > 12
    per_device: dict[int, list[float]] = {}
    for (d0, k0, t0), (d1, k1, t1) in zip(base, drawn, strict=True):
        assert (d0, k0) == (d1, k1)
        per_device.setdefault(d1, []).append(round(t1 / t0, 9))
    assert len(per_device) == 4  # 2 workers × 2 stages, each on its own device
    for factors in per_device.values():  # a device's own blocks: rotations of (1, 2, 3), back to back
        for k in range(0, len(factors) - 2, 3):
            chunk = factors[k : k + 3]
            assert chunk in ([1.0, 2.0, 3.0], [2.0, 3.0, 1.0], [3.0, 1.0, 2.0]), (k, factors)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=12),
    st.integers(1, 20),
    st.integers(0, 2**32 - 1),
)
def test_block_draws_keep_the_sequence_s_frequencies_and_its_order(values, block, seed):
    sequence = tuple(values)
    n = len(sequence)
    jitter = Jitter(np.random.default_rng(seed), 0.0, sequence, block=block, devices=2)
    draws = np.array([jitter.draw(1) for _ in range(block * 2000)])
    for v in set(sequence):  # circular blocks: each value as often as the sequence holds it
        p = sequence.count(v) / n
        # blocks, not single draws, are independent: the standard error of a mean over 2000 blocks
        assert abs(np.mean(draws == v) - p) <= 5 * np.sqrt(p * (1 - p) / 2000) + 1e-12
    # Within a block, a draw is the sequence's entry after the one before it (wrapping).
    for k in range(0, len(draws), block):
        chunk = draws[k : k + block]
        starts = [s for s in range(n) if sequence[s] == chunk[0]]
        assert any(all(chunk[i] == sequence[(s + i) % n] for i in range(block)) for s in starts)


def test_block_runs_are_reproducible_and_the_seed_matters():
    assert _ops(BLOCKS, SEQUENCE, seed=3, interval=0.2) == _ops(BLOCKS, SEQUENCE, seed=3, interval=0.2)
    assert _ops(BLOCKS, SEQUENCE, seed=3, interval=0.2) != _ops(BLOCKS, SEQUENCE, seed=4, interval=0.2)


def test_compiled_and_interpreted_block_runs_are_identical():
    profile = balanced_profile(2)
    plan = make_plan([WorkerConfig.default(n, 2) for n in range(3)], 2, 0.1)
    config = dataclasses.replace(BLOCKS, jitter_block=4)
    costs = dataclasses.replace(
        ProfileCosts.from_profiles((profile,), plan.partition, config), jitter_sequence=(0.5, 0.9, 1.0, 1.3, 2.0, 40.0)
    )
    scenario = Scenario(profile, plan, config, PoissonArrivals(0.1), 80, 7)
    blob = pickle.dumps((scenario, costs)).hex()
    code = f"import pickle; from tests.sim.native_digests import digest; print(digest(*pickle.loads(bytes.fromhex({blob!r}))))"
    assert run_pure(code).strip() == digest(scenario, costs)


@pytest.mark.parametrize("jitter", ["none", "lognormal"])
def test_blocks_need_the_empirical_sequence(jitter):
    with pytest.raises(FerretError, match="jitter_block 8 draws measured factors in blocks"):
        _ops(SimConfig(jitter=jitter, jitter_sigma=0.1, jitter_block=8), SEQUENCE)
