"""`SimConfig.stalls`: per device a renewal process of intervals in which the device runs nothing."""

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
from sim.stalls import DeviceStalls, Stalls, StallTable
from tests.sim.builders import balanced_profile, make_plan
from tests.sim.native_digests import digest
from tests.sim.pure_python import run_pure
from tests.sim.scenarios import Scenario

TABLE = StallTable(2.0, (0.05, 0.1, 0.4))
STALLED = SimConfig(concurrency=2, slowdown=0.5, op_overhead_s=0.01, jitter="lognormal", jitter_sigma=0.2, stalls=True)


class _Planted:
    """A generator stand-in: the gaps and table indices it is told to give, then gaps too long to matter."""

    def __init__(self, gaps: list[float], picks: list[int]) -> None:
        self.gaps, self.picks = gaps, picks

    def exponential(self, scale: float) -> float:
        return self.gaps.pop(0) if self.gaps else 1e9

    def integers(self, lo: int, hi: int) -> int:
        return self.picks.pop(0)


def test_one_stall_delays_exactly_the_op_it_falls_due_in():
    # One stall of 0.5 s due after 1.0 s of busy time: the op that runs through that second holds it.
    device = DeviceStalls(_Planted([1.0], [1]), StallTable(1.0, (0.1, 0.5)))  # type: ignore[arg-type]
    assert device.finish(0.0, 0.5) == 0.5  # busy 0.5 s
    assert device.finish(0.9, 0.3) == pytest.approx(1.2)  # busy 0.8 s: not yet due
    assert device.finish(2.0, 0.5) == pytest.approx(2.0 + 0.5 + 0.5)  # busy 1.3 s: held 0.5 s
    assert device.finish(5.0, 1.0) == 6.0  # the next one is due a long busy time later


def test_the_engine_ends_each_op_where_the_stalls_say():
    # One op at a time (a datum every 5 s): each op's end is its start plus its work, past every stall.
    config = SimConfig(stalls=True)
    _, ops = _run(config, TABLE, samples=40, interval=5.0, seed=3)
    _, plain = _run(SimConfig(), None, samples=40, interval=5.0, seed=3)
    stalls = Stalls(np.random.SeedSequence(3).spawn(3)[2], 1 + max(op[1] for op in ops), TABLE)
    held = 0
    for (_, device, start, end), (_, _, s0, e0) in zip(ops, plain, strict=True):
        assert end == pytest.approx(stalls.finish(device, start, e0 - s0), abs=1e-12)
        held += end - start > (e0 - s0) + 1e-9
    assert held > 3  # the stalls held some of them


@settings(max_examples=20, deadline=None)
@given(
    st.floats(0.5, 50.0),
    st.lists(st.integers(1, 200), min_size=1, max_size=8).map(lambda ms: sorted(m / 1000 for m in ms)),
    st.integers(0, 2**32 - 1),
)
def test_rate_and_durations_follow_the_table(rate, durations, seed):
    table = StallTable(rate, tuple(durations))
    device = DeviceStalls(np.random.default_rng(seed), table)
    work = 0.1 / rate  # ten ops per stall on average: rarely two in one op
    held = np.array([device.finish(0.0, work) - work for _ in range(40_000)])
    stalled = held[held > 0]
    # Stalls fall due at `rate` per busy second: an op of `work` s draws one or more with
    # probability 1 - e^{-rate·work} (5 binomial standard errors).
    p_any = 1 - np.exp(-rate * work)
    assert abs(len(stalled) / len(held) - p_any) <= 5 * np.sqrt(p_any * (1 - p_any) / len(held))
    # Each duration as often as the table holds it (ops that drew two stalls aside).
    single = stalled[np.isin(np.round(stalled, 9), np.round(durations, 9))]
    assert len(single) > 0.9 * len(stalled)
    for v in set(durations):
        p = durations.count(v) / len(durations)
        share = np.mean(np.isclose(single, v, rtol=1e-9))
        assert abs(share - p) <= 5 * np.sqrt(p * (1 - p) / len(single)) + 1e-12


def test_stalls_are_reproducible_and_the_seed_matters():
    a, ops_a = _run(STALLED, TABLE, seed=4)
    b, ops_b = _run(STALLED, TABLE, seed=4)
    _, ops_c = _run(STALLED, TABLE, seed=5)
    assert ops_a == ops_b and np.array_equal(a.update_s, b.update_s, equal_nan=True)
    assert ops_a != ops_c


def test_stalls_leave_the_other_draws_alone():
    # The stalls draw from their own child of the seed: a table that never stalls changes nothing.
    never = StallTable(1e-12, (1e-9,))
    _, with_stalls = _run(STALLED, never, seed=6)
    _, without = _run(dataclasses.replace(STALLED, stalls=False), None, seed=6)
    assert with_stalls == without


def test_stalls_without_a_table_are_refused():
    with pytest.raises(FerretError, match="stalls draws from a measured stall process"):
        _run(STALLED, None)


def test_compiled_and_interpreted_stalled_runs_are_identical():
    profile = balanced_profile(2)
    plan = make_plan([WorkerConfig.default(n, 2) for n in range(3)], 2, 0.1)
    costs = dataclasses.replace(ProfileCosts.from_profiles((profile,), plan.partition, STALLED), stall_table=TABLE)
    scenario = Scenario(profile, plan, STALLED, PoissonArrivals(0.1), 80, 7)
    blob = pickle.dumps((scenario, costs)).hex()
    code = f"import pickle; from tests.sim.native_digests import digest; print(digest(*pickle.loads(bytes.fromhex({blob!r}))))"
    assert run_pure(code).strip() == digest(scenario, costs)


def test_costs_json_keeps_the_stall_table_and_refuses_a_bad_one(tmp_path):
    profile = balanced_profile(1)
    costs = LayerCosts(
        names=tuple(x.name for x in profile.layers),
        t_fwd=tuple(profile.t_fwd.tolist()),
        t_bwd=tuple(profile.t_bwd.tolist()),
        t_rec=tuple(profile.t_fwd.tolist()),
        stall_table=TABLE,
    )
    costs.save(tmp_path / "costs.json")
    assert LayerCosts.load(tmp_path / "costs.json") == costs
    assert costs.for_partition((0, 2)).stall_table == TABLE
    obj = costs.to_json()
    for change, why in (
        ({"stall_rate_per_s": 0.0}, "finite rate > 0"),
        ({"stall_rate_per_s": float("inf")}, "finite rate > 0"),
        ({"stall_durations_s": []}, "empty"),
        ({"stall_durations_s": [0.1, -1.0]}, "finite times > 0"),
        ({"stall_durations_s": [0.2, 0.1]}, "sorted ascending"),
        ({"stall_durations_s": ["1"]}, "list of numbers"),
    ):
        with pytest.raises(ValidationError, match=why):
            LayerCosts.from_json({**obj, **change})
    with pytest.raises(ValidationError, match="stall_rate_per_s without stall_durations_s"):
        LayerCosts.from_json({k: v for k, v in obj.items() if k != "stall_durations_s"})
    del obj["stall_rate_per_s"], obj["stall_durations_s"]
    assert LayerCosts.from_json(obj).stall_table is None


def _run(config, table, samples=60, seed=0, interval=0.2):
    profile = balanced_profile(2)
    plan = make_plan([WorkerConfig.default(n, 2) for n in range(2)], 2, interval)
    costs = dataclasses.replace(ProfileCosts.from_profiles((profile,), plan.partition, config), stall_table=table)
    trace = MemoryTrace()
    result = simulate(plan, profile, samples, seed=seed, config=config, trace=trace, costs=costs)
    ops = [(r.kind, r.device, r.t_start, r.t_end) for r in trace.events() if r.kind in ("fwd", "bwd")]
    return result, ops
