"""A latest-weights plan through the twin and the replay executor: the twin's versions and
staleness are the StageRuntimes', its memory is theirs, and the run reports efficacy."""

from __future__ import annotations

import dataclasses

import pytest

from executor.compensation import CompensationConfig
from executor.replay import ReplayExecutor, execution_order, simulate_rows
from sim.config import SimConfig
from tests.executor.replay import fixtures

EXCLUSIVE = SimConfig(exclusive_devices=True)


def replay(plan, compensation="none", efficacy_every=1, n=40, interval_s=1.0):
    setup = fixtures.setup(n=n, interval_s=interval_s)
    rows, sim = simulate_rows(plan, setup.profile, setup.stream.arrival_s, 0, EXCLUSIVE)
    executor = ReplayExecutor(setup, plan, CompensationConfig(compensation), efficacy_every=efficacy_every)
    return rows, sim, executor, executor.run(rows, drain=True)


@pytest.mark.parametrize("workers", [1, 3, 5])
def test_the_replay_runs_the_twins_versions_and_staleness(workers):
    # Every backward's version and staleness is checked against the trace inside run(): a
    # mismatch would raise. With several workers some backwards go stale while they run.
    plan = fixtures.plan((0, 1, 2, 3), workers=workers, interval_s=1.0, recompute=True, backward_weights="latest")
    rows, sim, executor, result = replay(plan)
    backwards = [r for r in rows if r.kind == "bwd"]
    recomputes = {(r.sample, r.stage): r.version for r in rows if r.kind == "recompute"}
    assert all(
        recomputes[(r.sample, r.stage)] == r.version for r in backwards
    )  # the backward's version is its recompute's
    stashed_plan = fixtures.plan((0, 1, 2, 3), workers=workers, interval_s=1.0, recompute=True)
    stashed = max(
        r.staleness
        for r in simulate_rows(stashed_plan, executor.setup.profile, executor.setup.stream.arrival_s, 0, EXCLUSIVE)[0]
        if r.kind == "bwd"
    )
    assert max(r.staleness for r in backwards) < max(stashed, 1)  # fresher than stashing the forward's version
    # Weights: one version per stage, plus a copy while an update lands during a backward that
    # holds the version it read — never the stashes of the same workers stashing.
    weights = sum(stage.layout.nbytes for stage in executor.stages)
    stashing = replay(stashed_plan)[2]
    assert executor.ledger.peaks()["weights"] < stashing.ledger.peaks()["weights"] or workers == 1
    if workers == 1:
        assert executor.ledger.peaks()["weights"] == weights
    # The twin charges the same minus the activations a recomputation rebuilds (docs/replay.md)
    rebuilt = workers * sum(executor.setup.profile.act_bytes)
    assert 0 <= executor.ledger.f4_peak - sim.peak_memory_bytes <= rebuilt
    assert result.details["compensation_efficacy"]["every"] == 1


def test_latest_recomputations_read_the_weights_when_they_start():
    plan = fixtures.plan((0, 1, 2, 3), workers=3, interval_s=1.0, recompute=True, backward_weights="latest")
    rows, _, _, _ = replay(plan)
    ordered = execution_order(rows, plan)
    latest_recomputes = [r for r in ordered if r.kind == "recompute"]
    assert latest_recomputes and all(r.t_start < r.t_end for r in latest_recomputes)
    position = {id(r): i for i, r in enumerate(ordered)}
    for r in latest_recomputes:  # nothing that ends after the recompute starts comes before it
        earlier = [o for o in ordered[: position[id(r)]] if o.kind in ("bwd", "update")]
        assert all(o.t_end <= r.t_start for o in earlier)


def test_a_stashed_run_reports_compensation_efficacy_per_stage_and_half():
    plan = fixtures.plan((0, 1, 2, 3), workers=3, interval_s=1.0)
    _, _, _, result = replay(plan, compensation="hvp")
    efficacy = result.details["compensation_efficacy"]
    assert efficacy["samples"] > 0 and len(efficacy["per_stage"]) == 3 and len(efficacy["halves"]) == 2
    assert efficacy["samples"] == sum(s["samples"] for s in efficacy["per_stage"])
    assert -1.0 <= efficacy["efficacy_median"] <= 1.0


@pytest.mark.parametrize(
    "config",
    [
        SimConfig(concurrency=2, slowdown=0.5, op_overhead_s=0.05, update_s=0.1),  # the engine's timed path
        SimConfig(jitter="lognormal", jitter_sigma=0.3, link_latency_s=0.05),  # jitter, links
    ],
    ids=["shared-devices", "jitter-links"],
)
def test_the_twins_non_plain_paths_run_latest_weights_as_the_replay_does(config):
    # Shared devices let an update land while a latest backward runs: its staleness is then the
    # updates after its recomputation started, which run() checks row by row against the twin.
    plan = fixtures.plan((0, 1, 2, 3), workers=4, interval_s=0.3, recompute=True, backward_weights="latest")
    placement = tuple((0, 0, 0) for _ in plan.workers) if config.concurrency > 1 else plan.placement
    plan = dataclasses.replace(plan, placement=placement)
    setup = fixtures.setup(n=40, interval_s=0.3)
    rows, sim = simulate_rows(plan, setup.profile, setup.stream.arrival_s, 0, config)
    executor = ReplayExecutor(setup, plan, CompensationConfig("hvp"), efficacy_every=1)
    result = executor.run(rows, drain=True)
    rebuilt = len(plan.workers) * sum(setup.profile.act_bytes)  # as above: what recomputations rebuild
    assert 0 <= executor.ledger.f4_peak - sim.peak_memory_bytes <= rebuilt
    backwards = [r for r in rows if r.kind == "bwd"]
    recomputes = {(r.sample, r.stage): r.version for r in rows if r.kind == "recompute"}
    assert backwards and all(recomputes[(r.sample, r.stage)] == r.version for r in backwards)
    assert result.details["updates_per_stage"] == [
        sum(1 for r in rows if r.kind == "update" and r.stage == j) for j in range(3)
    ]
    if config.concurrency > 1:
        assert any(r.staleness > 0 for r in backwards)  # an update landed during a latest backward
