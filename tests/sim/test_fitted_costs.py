"""The trace-fitted cost model through the engine's one cost seam (`simulate(costs=...)`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from planner.errors import ValidationError
from planner.plan import WorkerConfig
from sim import MemoryTrace, SimConfig, simulate
from sim.fitted_costs import LayerCosts, StageTimes
from tests.sim.builders import balanced_profile, make_plan

CONFIG = SimConfig(op_overhead_s=0.01, update_s=0.02, link_latency_s=0.005, link_bandwidth_Bps=1e5)


def _layer_costs(profile, t_rec=None):
    return LayerCosts(
        names=tuple(layer.name for layer in profile.layers),
        t_fwd=tuple(profile.t_fwd.tolist()),
        t_bwd=tuple(profile.t_bwd.tolist()),
        t_rec=tuple(profile.t_fwd.tolist()) if t_rec is None else t_rec,
        op_overhead_s=CONFIG.op_overhead_s,
        update_s=CONFIG.update_s,
        link_latency_s=CONFIG.link_latency_s,
        link_bandwidth_Bps=CONFIG.link_bandwidth_Bps,
    )


def test_the_profile_s_own_times_simulate_exactly_as_the_profile():
    profile = balanced_profile(3)
    plan = make_plan([WorkerConfig.default(n, 3, recompute=n == 1) for n in range(2)], 3, 0.2)
    costs = _layer_costs(profile).for_partition(plan.partition)
    a = simulate(plan, profile, 300, config=CONFIG)
    b = simulate(plan, profile, 300, config=CONFIG, costs=costs)
    assert np.array_equal(a.update_s, b.update_s, equal_nan=True)
    assert a.adaptation_rate == b.adaptation_rate and a.peak_memory_bytes == b.peak_memory_bytes


def test_a_recompute_costs_its_own_fitted_time():
    profile = balanced_profile(3)
    plan = make_plan([WorkerConfig.default(0, 3, recompute=True)], 3, 2.0)  # one datum at a time: no queueing
    t_rec = tuple(3 * t for t in profile.t_fwd.tolist())
    trace = MemoryTrace()
    simulate(
        plan, profile, 5, config=CONFIG, costs=_layer_costs(profile, t_rec).for_partition(plan.partition), trace=trace
    )
    recomputes = [r for r in trace.events() if r.kind == "recompute"]
    assert len(recomputes) == 15
    for r in recomputes:  # the overhead is charged on the job's first row
        stage_rec = sum(t_rec[plan.partition[r.stage] : plan.partition[r.stage + 1]])
        assert r.t_end - r.t_start == pytest.approx(CONFIG.op_overhead_s + stage_rec)


def test_json_round_trip_and_refusals(tmp_path):
    profile = balanced_profile(2)
    costs = dataclasses.replace(_layer_costs(profile), link_bandwidth_Bps=math.inf)
    costs.save(tmp_path / "costs.json")
    assert LayerCosts.load(tmp_path / "costs.json") == costs
    assert costs.check(profile) is costs
    other = dataclasses.replace(
        profile, layers=tuple(dataclasses.replace(x, name="x" + x.name) for x in profile.layers)
    )
    with pytest.raises(ValidationError, match="costs are for layers"):
        costs.check(other)
    with pytest.raises(ValidationError, match="op_overhead_s must be a finite time"):
        dataclasses.replace(costs, op_overhead_s=-1.0)
    (tmp_path / "bad.json").write_text('{"layers": [{"name": "a"}]}')
    with pytest.raises(ValidationError, match="t_fwd_s is missing"):
        LayerCosts.load(tmp_path / "bad.json")


def test_a_measured_partition_costs_what_was_measured_others_their_layers_sums(tmp_path):
    profile = balanced_profile(2)  # 4 layers
    measured = StageTimes((0, 2, 4), (1.0, None), (2.0, 3.0), (None, None))
    costs = dataclasses.replace(_layer_costs(profile), stages=(measured,))
    seen = costs.for_partition((0, 2, 4))
    assert seen.forward(0).seconds(1) == 1.0 and seen.backward(1).seconds(1) == 3.0
    assert seen.forward(1).seconds(1) == pytest.approx(float(profile.t_fwd[2:4].sum()))  # not measured: the sum
    assert seen.recompute(0).seconds(1) == pytest.approx(float(profile.t_fwd[0:2].sum()))
    other = costs.for_partition((0, 1, 4))
    assert other.backward(1).seconds(1) == pytest.approx(float(profile.t_bwd[1:4].sum()))
    costs.save(tmp_path / "costs.json")
    assert LayerCosts.load(tmp_path / "costs.json") == costs
