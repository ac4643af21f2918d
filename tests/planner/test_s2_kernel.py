"""The compiled S2 run (`s2_run` in planner/_s3_kernel.c) is numpy's (`ChainBuilder._s2_run`
after `_greedy_order`), bit for bit: after every `advance` of a chain built both ways, the
steps recorded, the rate and memory, and the chain state it leaves are the same."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import s3_batch
from planner.stage_model import StageModel
from planner.worker_chain import ChainBuilder, stage_models
from tests.planner.profiles import partitions, profiles, uniform_profile
from tests.planner.test_fast_search import random_profile
from tests.planner.test_s3_kernel import needs_kernel


def _snapshot(builder: ChainBuilder) -> dict[str, object]:
    memory, rates = builder._states()
    state = builder.state
    return {
        "rate": builder.rate,
        "mem": builder.mem,
        "tail": builder.in_tail,
        "last_run": builder._last_run,
        "memory": memory,
        "rates": rates,
        "ratios": np.concatenate([*builder._ratios, np.array(builder._s3_ratios)]),
        "stages": np.concatenate([*builder._stages, np.array(builder._s3_stages, dtype=np.int64)]),
        "accs": np.concatenate([np.zeros(0, dtype=np.int64), *builder._accs]),
        **{name: getattr(state, name).copy() for name in ("rung", "g", "terms", "inv_lcm", "closed")},
        "saved": state.s3.saved.copy(),
    }


def _advance_both_ways(model: StageModel) -> int:
    """Advance a chain with the kernel and one without, side by side, to its tail, comparing
    them after every step; return how many advances it took."""
    kernel = s3_batch.kernel
    compiled, reference = ChainBuilder(model), ChainBuilder(model)
    advances = 0
    while not reference.in_tail and not reference.done:
        compiled.advance()
        s3_batch.kernel = None
        try:
            reference.advance()
        finally:
            s3_batch.kernel = kernel
        advances += 1
        got, expected = _snapshot(compiled), _snapshot(reference)
        for name, value in expected.items():
            assert np.array_equal(got[name], value), (name, advances)
            assert np.asarray(got[name]).dtype.kind == np.asarray(value).dtype.kind, name
    return advances


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_kernel_runs_the_numpy_s2_steps_bit_for_bit(data):
    profile = data.draw(profiles(min_layers=2, max_layers=64))
    decay = data.draw(st.sampled_from([0.0, 0.3, 1.0, 30.0, 300.0]))
    part = data.draw(partitions(profile.num_layers))
    for model in stage_models(profile, [part], (False, True), decay, 1.0):
        _advance_both_ways(model)


@needs_kernel
def test_the_kernel_runs_long_and_wide_chains():
    """100 stages (look-up tables 129 wide), fast decay (many S3 steps among the S2 runs:
    stretches, windows and resumed runs all taken), and no decay (every S2 ratio infinite:
    the order rests on ties alone)."""
    advances = []
    for profile in (random_profile(np.random.default_rng(3), 100), uniform_profile(100)):
        for decay in (0.0, 1.0, 100.0):
            (model,) = stage_models(profile, [tuple(range(101))], (False,), decay, 1.0)
            advances.append(_advance_both_ways(model))
    assert max(advances) > 5  # some chain took several S3 steps among its S2 runs
