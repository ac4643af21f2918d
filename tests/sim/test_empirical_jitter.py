"""`jitter = "empirical"` with `jitter_block = 1`: every op × a factor drawn uniformly from the cost model's measured sequence."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import FerretError, ValidationError
from planner.plan import WorkerConfig
from sim import MemoryTrace, SimConfig, simulate
from sim.arrivals import PoissonArrivals
from sim.costs import ProfileCosts
from sim.fitted_costs import LayerCosts
from sim.parts import Jitter
from tests.sim.builders import balanced_profile, make_plan
from tests.sim.native_digests import digest
from tests.sim.pure_python import run_pure
from tests.sim.scenarios import Scenario

EMPIRICAL = SimConfig(concurrency=2, slowdown=0.5, op_overhead_s=0.01, jitter="empirical", jitter_sigma=0.3)
TABLE = (0.5, 0.9, 1.0, 1.0, 1.1, 1.3, 2.0, 40.0)


def _run(config, table, samples=60, seed=0, interval=0.2):
    profile = balanced_profile(2)
    plan = make_plan([WorkerConfig.default(n, 2) for n in range(2)], 2, interval)
    costs = dataclasses.replace(ProfileCosts.from_profiles((profile,), plan.partition, config), jitter_sequence=table)
    trace = MemoryTrace()
    result = simulate(plan, profile, samples, seed=seed, config=config, trace=trace, costs=costs)
    return result, [(r.kind, r.t_start, r.t_end) for r in trace.events() if r.kind in ("fwd", "bwd")]


def test_a_table_of_one_value_stretches_every_op_by_it():
    plain = dataclasses.replace(EMPIRICAL, concurrency=1, slowdown=0.0, jitter="none")
    one = dataclasses.replace(plain, jitter="empirical")
    _, base = _run(plain, (), interval=5.0)  # one datum at a time: no queueing, durations alone
    _, stretched = _run(one, (2.5,), interval=5.0)
    assert len(base) == len(stretched) > 0
    for (_, s0, e0), (_, s1, e1) in zip(base, stretched, strict=True):
        assert e1 - s1 == pytest.approx(2.5 * (e0 - s0), rel=1e-12)


def test_the_draw_is_reproducible_and_the_seed_matters():
    a, ops_a = _run(EMPIRICAL, TABLE, seed=4)
    b, ops_b = _run(EMPIRICAL, TABLE, seed=4)
    _, ops_c = _run(EMPIRICAL, TABLE, seed=5)
    assert ops_a == ops_b and np.array_equal(a.update_s, b.update_s, equal_nan=True)
    assert ops_a != ops_c


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=12), st.integers(0, 2**32 - 1))
def test_draws_have_the_table_s_distribution(values, seed):
    table = tuple(sorted(values))
    jitter = Jitter(np.random.default_rng(seed), 0.0, table)
    n = 20_000
    draws = np.array([jitter.draw(0) for _ in range(n)])
    assert set(np.unique(draws)) <= set(table)
    for v in set(table):  # each value as often as the table holds it, within 5 binomial standard errors
        p = table.count(v) / len(table)
        assert abs(np.mean(draws == v) - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12
    for q in (0.1, 0.5, 0.9):  # so every quantile of the draws lies among the table's near it
        lo, hi = np.quantile(table, [max(q - 0.03, 0), min(q + 0.03, 1)], method="inverted_cdf")
        assert lo <= np.quantile(draws, q, method="inverted_cdf") <= hi


def test_empirical_without_a_table_is_refused():
    with pytest.raises(FerretError, match="jitter 'empirical' draws from measured op-time factors"):
        _run(EMPIRICAL, ())


def test_compiled_and_interpreted_empirical_runs_are_identical():
    profile = balanced_profile(2)
    plan = make_plan([WorkerConfig.default(n, 2) for n in range(3)], 2, 0.1)
    costs = dataclasses.replace(
        ProfileCosts.from_profiles((profile,), plan.partition, EMPIRICAL), jitter_sequence=TABLE
    )
    scenario = Scenario(profile, plan, EMPIRICAL, PoissonArrivals(0.1), 80, 7)
    blob = pickle.dumps((scenario, costs)).hex()
    code = f"import pickle; from tests.sim.native_digests import digest; print(digest(*pickle.loads(bytes.fromhex({blob!r}))))"
    assert run_pure(code).strip() == digest(scenario, costs)


def test_costs_json_keeps_the_sequence_and_refuses_a_bad_one(tmp_path):
    profile = balanced_profile(1)
    costs = LayerCosts(
        names=tuple(x.name for x in profile.layers),
        t_fwd=tuple(profile.t_fwd.tolist()),
        t_bwd=tuple(profile.t_bwd.tolist()),
        t_rec=tuple(profile.t_fwd.tolist()),
        jitter_sequence=TABLE,
    )
    costs.save(tmp_path / "costs.json")
    assert LayerCosts.load(tmp_path / "costs.json") == costs
    assert costs.for_partition((0, 2)).jitter_sequence == TABLE
    obj = costs.to_json()
    for bad, why in (
        ([], "empty"),
        ([0.5, -1.0], "finite and ≥ 0"),
        ([1.0, float("nan")], "finite and ≥ 0"),
        (["1"], "list of numbers"),
    ):
        with pytest.raises(ValidationError, match=why):
            LayerCosts.from_json({**obj, "jitter_sequence": bad})
    assert LayerCosts.from_json({**obj, "jitter_sequence": [2.0, 1.0]}).jitter_sequence == (2.0, 1.0)  # time order
    with pytest.raises(ValidationError, match="jitter_factors .* rerun ferret calibrate"):
        LayerCosts.from_json({**obj, "jitter_factors": [1.0, 2.0]})  # an older calibrate's sorted table
    del obj["jitter_sequence"]
    assert LayerCosts.from_json(obj).jitter_sequence == ()
