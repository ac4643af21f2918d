"""`SimConfig.loop_s`: the executor's time between ops, charged to the device with every job."""

from __future__ import annotations

import dataclasses

import pytest

from planner.errors import ValidationError
from planner.plan import WorkerConfig
from sim import SimConfig, simulate
from sim.costs import ProfileCosts
from sim.fitted_costs import LayerCosts
from tests.sim.builders import balanced_profile, make_plan

LOOP = 0.0625  # exact in binary: sums of it compare exactly


@pytest.mark.parametrize("stages", [1, 3])
def test_each_job_costs_the_loop_once_on_its_device(stages):
    profile = balanced_profile(stages)
    plan = make_plan([WorkerConfig.default(0, stages)], stages, 4.0)  # one datum at a time: no queueing
    n = 5
    plain = simulate(plan, profile, n, config=SimConfig(op_overhead_s=0.03125))
    looped = simulate(plan, profile, n, config=SimConfig(op_overhead_s=0.03125, loop_s=LOOP))
    jobs = 2 * stages  # a forward and a backward per stage
    # the last datum's chain of jobs is LOOP longer per job; the devices are busy LOOP longer per job
    assert looped.makespan_s - plain.makespan_s == pytest.approx(jobs * LOOP)
    busy = [sum(u * r.makespan_s for u in r.utilisation) for r in (plain, looped)]
    assert busy[1] - busy[0] == pytest.approx(n * jobs * LOOP)


def test_profile_and_fitted_costs_charge_it_beside_the_op_overhead():
    profile = balanced_profile(2)
    config = SimConfig(op_overhead_s=0.25, loop_s=LOOP)
    costs = ProfileCosts.from_profiles([profile], (0, 2, 4), config)
    assert costs.overhead_s(1) == 0.25 + LOOP
    names = tuple(layer.name for layer in profile.layers)
    times = tuple(profile.t_fwd.tolist())
    fitted = LayerCosts(names, times, times, times, op_overhead_s=0.25, loop_s=LOOP)
    assert fitted.for_partition((0, 2, 4)).overhead_s(0) == 0.25 + LOOP
    assert LayerCosts.from_json(fitted.to_json()) == fitted
    old = {k: v for k, v in fitted.to_json().items() if k != "loop_s"}  # a costs.json from before the field
    assert LayerCosts.from_json(old) == dataclasses.replace(fitted, loop_s=0.0)


def test_a_negative_loop_time_is_refused():
    with pytest.raises(ValidationError, match="loop_s"):
        SimConfig(loop_s=-1e-6)
    profile = balanced_profile(1)
    names = tuple(layer.name for layer in profile.layers)
    times = tuple(profile.t_fwd.tolist())
    with pytest.raises(ValidationError, match="loop_s must be a finite time"):
        LayerCosts(names, times, times, times, loop_s=-1.0)
