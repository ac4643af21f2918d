"""The lock-step tails (`planner/s3_batch.py`): a chain's tail does not depend on its batch,
a batch-stopped chain resumes into the chain built alone, and `exact_sums` is `math.fsum`."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.s3_batch import FSUM_ROWS, exact_sums, ratio, ratios
from planner.search import FerretPlanner
from planner.worker_chain import ChainBuilder, build_chain, build_tails, stage_models
from tests.planner.profiles import partitions, profiles
from tests.planner.test_fast_search import random_profile


def _at_tail(model) -> ChainBuilder:
    builder = ChainBuilder(model)
    while not builder.in_tail and not builder.done:
        builder.advance()
    return builder


def _same_chain(a, b) -> None:
    for field in ("kinds", "stages", "accumulations", "memory", "ratios", "rates"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_a_tail_built_in_a_batch_is_the_tail_built_alone(data):
    """Bit for bit: padding, batch size and the other rows change nothing."""
    profile = data.draw(profiles(min_layers=2, max_layers=24))
    decay = data.draw(st.sampled_from([0.0, 1.0, 30.0]))
    parts = [data.draw(partitions(profile.num_layers)) for _ in range(data.draw(st.integers(2, 5)))]
    models = stage_models(profile, parts, (False, True), decay, 1.0)
    builders = [_at_tail(m) for m in models]
    build_tails([b for b in builders if not b.done])
    for model, builder in zip(models, builders, strict=True):
        _same_chain(builder.chain(), build_chain(model))


def test_a_chain_stopped_in_a_batch_resumes_into_the_same_chain():
    rng = np.random.default_rng(7)
    profile = random_profile(rng, 30)
    models = stage_models(profile, [(0, 3, 7, 12, 15, 20, 30), tuple(range(31)), (0, 10, 11, 30)], (False,), 1.0, 1.0)
    builders = [_at_tail(m) for m in models]
    calls = []

    def stop_at_the_second_question(rows, memory, upper):  # after ASK_EVERY steps
        calls.append(len(calls))
        return np.full(len(rows), len(calls) > 1)

    done = build_tails(builders, beaten=stop_at_the_second_question)
    assert not all(done)
    for model, builder in zip(models, builders, strict=True):
        _same_chain(builder.chain(), build_chain(model))


def test_rows_within_the_safe_memory_are_never_asked_and_build_on():
    """`safe_memory`: the stopping rule hears only of rows above it; a row stopped while above
    it resumes into the same chain, and a row within it is built to its end."""
    rng = np.random.default_rng(5)
    profile = random_profile(rng, 30)
    parts = [(0, 3, 7, 12, 15, 20, 30), tuple(range(31)), (0, 10, 11, 30), (0, 2, 4, 6, 30)]
    models = stage_models(profile, parts, (False, True), 1.0, 1.0)
    builders = [_at_tail(m) for m in models]
    builders = [b for b in builders if not b.done]
    safe = sorted(b.mem for b in builders)[len(builders) // 2]
    asked = []

    def stop_all(rows, memory, upper):
        asked.append(memory.copy())
        return np.ones(len(rows), dtype=bool)

    within = [b.mem <= safe for b in builders]
    done = build_tails(builders, beaten=stop_all, safe_memory=safe)
    assert asked and all((memory > safe).all() for memory in asked)
    # Every row within it is built whole; a row above it stopped at once (though it is stepped
    # along while a row after it, with fewer steps left, goes on).
    assert all(finished for finished, w in zip(done, within, strict=True) if w)
    assert any(within) and not all(done)
    for builder in builders:
        _same_chain(builder.chain(), build_chain(builder.model))


def test_a_budget_sweep_with_resumed_chains_plans_as_fresh_planners():
    rng = np.random.default_rng(11)
    profile = random_profile(rng, 20)
    td = float(profile.t_fwd.max())
    sweep = FerretPlanner(profile, td)
    low, high = sweep.min_memory_bytes(), sweep.max_memory_bytes()
    for budget in np.geomspace(low, high, 8).astype(int).tolist():
        assert sweep.plan(budget).plan == FerretPlanner(profile, td).plan(budget).plan


positive = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200)
@given(
    st.lists(st.lists(positive, min_size=1, max_size=70), min_size=1, max_size=5).filter(
        lambda r: len({len(x) for x in r}) == 1
    )
)
def test_exact_sums_is_fsum(rows):
    rows = rows * FSUM_ROWS  # enough rows for the pairwise path
    terms = np.array(rows)
    assert exact_sums(terms).tolist() == [math.fsum(r) for r in rows]


def test_exact_sums_on_sums_that_round_at_a_half():
    """Exact midpoints between doubles, powers of two, thirds: the cases rounding can flip."""
    rng = np.random.default_rng(0)
    cases = [
        [1.0, 2.0**-53],  # exactly half an ulp above 1: ties to even
        [1.0, 2.0**-53, 2.0**-106],
        [2.0, -0.0, 2.0**-52, 2.0**-52],
        [1 / 3] * 3 + [1 / 7] * 7,
        [0.1] * 10,
        [0.0] * 5,
    ]
    for row in cases:
        assert exact_sums(np.array([row] * FSUM_ROWS))[0] == math.fsum(row), row
    shape = (2 * FSUM_ROWS, 40)
    scaled = (rng.integers(0, 1 << 20, shape) * 2.0 ** rng.integers(-80, 0, shape)).astype(float)
    assert exact_sums(scaled).tolist() == [math.fsum(r) for r in scaled.tolist()]


def test_one_ratio_is_what_ratios_gives():
    """`ratio` (one pair, Python floats) and `ratios` (arrays) agree bit for bit, edge cases included:
    nothing saved, a gain, a loss of zero (either sign), an overflowing quotient, a subnormal loss."""
    values = [0.0, -0.0, 1.0, -1.0, 3.0, 1e308, 1e-308, 5e-324, 12345678.0, 0.1]
    saved = np.array([s for s in values for _ in values])
    lost = np.array([lo for _ in values for lo in values])
    with np.errstate(divide="ignore"):
        expected = ratios(saved, lost)
    got = np.array([ratio(s, lo) for s, lo in zip(saved.tolist(), lost.tolist(), strict=True)])
    assert got.tobytes() == expected.tobytes()
