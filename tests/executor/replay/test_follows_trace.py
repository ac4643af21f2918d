"""The executor follows a twin trace op by op: every op once, in order, on the trace's versions."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from executor.compensation import CompensationConfig
from executor.replay import ReplayExecutor, check_rows, execution_order, load_rows, simulate_rows
from planner.errors import FerretError
from sim.config import SimConfig
from sim.trace import FileTrace, MemoryTrace, TraceRow
from tests.executor.replay import fixtures

COMPUTE = ("fwd", "recompute", "bwd", "update")
EXCLUSIVE = SimConfig(exclusive_devices=True)

# Two interleaved workers over three stages (td = cycle / 2), then every technique at once.
PLANS = {
    "two-workers": fixtures.plan((0, 1, 2, 3), workers=2, interval_s=1.5),
    "techniques": fixtures.plan(
        (0, 1, 2, 3), workers=2, interval_s=1.5, accumulation=(2, 1, 1), omission=(1, 0, 0), recompute=True
    ),
}


def run(plan, drain=True, compensation="none", rows=None):
    setup = fixtures.setup(n=40, interval_s=1.5)
    sim = None
    if rows is None:
        rows, sim = simulate_rows(plan, setup.profile, setup.stream.arrival_s, setup.seed, EXCLUSIVE)
    recorder = MemoryTrace()
    executor = ReplayExecutor(setup, plan, CompensationConfig(compensation), recorder)
    result = executor.run(rows, drain=drain)
    return SimpleNamespace(
        setup=setup, rows=rows, sim=sim, executor=executor, result=result, measured=recorder.events()
    )


def key(row):
    first = row.samples if row.kind == "update" else row.sample
    return (row.kind, first, row.worker, row.stage)


@pytest.mark.parametrize("name", PLANS)
def test_every_op_of_the_trace_runs_once_in_execution_order(name):
    r = run(PLANS[name], compensation="iter-fisher")
    traced = [key(row) for row in execution_order(r.rows) if row.kind in COMPUTE]
    ran = [key(row) for row in r.measured if row.kind in COMPUTE]
    assert ran == traced
    assert max(Counter(ran).values()) == 1
    for slot in {
        (row.worker, row.stage) for row in r.rows if row.kind in COMPUTE
    }:  # each slot in the trace's own order
        in_trace = [key(row) for row in r.rows if row.kind in COMPUTE and (row.worker, row.stage) == slot]
        assert [k for k in ran if k[2:] == slot] == in_trace
    assert sum(r.executor.updates) == sum(1 for row in r.rows if row.kind == "update")


@pytest.mark.parametrize("name", PLANS)
def test_versions_and_staleness_are_the_traces(name):
    r = run(PLANS[name])
    ops = ("fwd", "bwd", "recompute")
    assert {key(row): (row.version, row.staleness) for row in r.measured if row.kind in ops} == {
        key(row): (row.version, row.staleness) for row in r.rows if row.kind in ops
    }
    assert max(row.staleness for row in r.rows if row.kind == "bwd") >= 2  # not vacuous: gradients were stale


def test_staleness_histogram_is_the_twins():
    r = run(PLANS["two-workers"])
    twin = [list(h) for h in r.sim.staleness_histogram]
    assert len(twin[0]) >= 3
    assert [h + [0] * (len(t) - len(h)) for h, t in zip(r.executor.records.staleness, twin, strict=True)] == twin


def test_omission_partially_trains_and_accumulation_groups_updates():
    r = run(PLANS["techniques"])
    bottom = r.executor.records.bottom
    entered = bottom >= 0
    assert (~entered).sum() == sum(1 for row in r.rows if row.kind == "drop")  # the rest was dropped
    counts = Counter(bottom[entered].tolist())
    assert set(counts) == {0, 1} and abs(counts[0] - counts[1]) <= 2  # every 2nd datum of a worker stops at 1
    groups = [row.samples for row in r.measured if row.kind == "update" and row.stage == 0]
    assert groups and all(len(s) == 2 for s in groups[:-1])  # c^a = 2 at stage 0
    assert (r.result.trained == entered).all()


def test_without_drain_nothing_after_the_last_arrival_runs():
    r = run(PLANS["two-workers"], drain=False)
    last = max(row.t_end for row in r.rows if row.kind == "arrive")
    ran = {key(row) for row in r.measured if row.kind in COMPUTE}
    late = {
        key(row) for row in r.rows if row.kind in COMPUTE and (row.t_start if row.kind == "fwd" else row.t_end) > last
    }
    assert late and not (ran & late)
    assert ran | late == {key(row) for row in r.rows if row.kind in COMPUTE}
    assert not r.result.trained[-1]


def test_a_trace_from_another_plan_is_refused_with_the_row_named():
    rows = run(PLANS["two-workers"]).rows
    i = next(i for i, row in enumerate(rows) if row.kind == "bwd" and row.staleness > 0)
    doctored = list(rows)
    doctored[i] = rows[i]._replace(version=rows[i].version + 1, staleness=rows[i].staleness - 1)
    with pytest.raises(FerretError, match=r"trace row \d+ \(bwd of sample \d+\): .*version"):
        run(PLANS["two-workers"], rows=doctored)


def _compute_row(rows, kind, stage):
    return next(i for i, row in enumerate(rows) if row.kind == kind and row.stage == stage and row.sample == 0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # Found by the CLI fuzzer (each crashed inside the stage math): a forward's stage renamed, a backward moved before the datum's forwards, a forward of
        # stage 2 moved before its stage-1 forward (stage 2 ran on stage 0's output).
        ("fwd 1 -> 2", "fwd of stage 2 where the datum's next op is the forward of stage 1"),
        ("bwd first", "bwd of stage 1 where the datum's next op is the forward of stage 1"),
        ("fwd 2 early", "fwd of stage 2 where the datum's next op is the forward of stage 1"),
    ],
)
def test_a_trace_whose_ops_of_a_datum_are_out_of_order_is_refused_with_the_row_named(edit, message):
    plan = PLANS["two-workers"]
    rows = list(run(plan).rows)
    assert plan.num_stages == 3
    fwd1, fwd2, bwd1 = (_compute_row(rows, kind, stage) for kind, stage in (("fwd", 1), ("fwd", 2), ("bwd", 1)))
    if edit == "fwd 1 -> 2":
        rows[fwd1] = rows[fwd1]._replace(stage=2)
    elif edit == "bwd first":
        start = rows[fwd1].t_start
        rows[bwd1] = rows[bwd1]._replace(t_start=start - 1e-9, t_end=start - 1e-9)
    else:
        start = rows[fwd1].t_start
        rows[fwd2] = rows[fwd2]._replace(t_start=start - 1e-9, t_end=start - 1e-9)
    with pytest.raises(FerretError, match=rf"trace row \d+ \((fwd|bwd) of sample 0\): {message}"):
        run(plan, rows=rows)


@pytest.mark.parametrize("fmt", ["ftrace", "jsonl", "csv"])
def test_a_trace_file_replays_like_the_simulated_rows(tmp_path, fmt):
    plan = PLANS["techniques"]
    first = run(plan)
    path = tmp_path / f"trace.{fmt}"
    with FileTrace(path, fmt) as sink:
        for row in first.rows:
            sink.add(row)
    again = run(plan, rows=load_rows(path, first.setup.stream.arrival_s, plan))
    for name, tensor in first.setup.model.state_dict().items():
        assert torch.equal(tensor, again.setup.model.state_dict()[name]), name
    assert (first.result.predicted == again.result.predicted).all()


def test_trace_rows_outside_the_plan_or_stream_are_refused(tmp_path):
    plan = PLANS["two-workers"]
    rows = run(plan).rows
    path = tmp_path / "trace.jsonl"
    with FileTrace(path) as sink:
        for row in rows:
            sink.add(row._replace(stage=7) if row.kind == "fwd" else row)
    arrival_s = fixtures.setup(n=40, interval_s=1.5).stream.arrival_s
    with pytest.raises(FerretError, match="stage 7, but the plan has 2 workers and 3 stages"):
        load_rows(path, arrival_s, plan)
    with FileTrace(path) as sink:
        for row in rows:
            sink.add(row)
    with pytest.raises(FerretError, match="datum 1 arrives at 1.5 s but the stream's arrives at 2 s"):
        load_rows(path, arrival_s * (4 / 3), plan)
    with pytest.raises(FerretError, match="has 40 arrive rows but the stream has 41 data"):
        check_rows(rows, 41, plan, "t.jsonl")
    with pytest.raises(FerretError, match="sample 40 is outside the stream"):
        check_rows([*rows, TraceRow("drop", 40, 0, -1, -1, 0.0, 0.0)], 40, plan, "t.jsonl")
