"""The executor follows a twin trace op by op: every op once, in order, on the trace's versions."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from executor.compensation import CompensationConfig
from executor.replay import ReplayExecutor, RowTrace, check_rows, execution_order, load_rows, simulate_rows
from planner.errors import FerretError
from sim.config import SimConfig
from sim.trace import FileTrace
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
    recorder = RowTrace()
    executor = ReplayExecutor(setup, plan, CompensationConfig(compensation), recorder)
    result = executor.run(rows, drain=drain)
    return SimpleNamespace(setup=setup, rows=rows, sim=sim, executor=executor, result=result, measured=recorder.kept)


def key(row):
    return (row[0], row[1], row[2], row[3]) if row[0] != "update" else ("update", row[10], row[2], row[3])


def file_row(row):
    return row[:10] if row[0] != "update" else (*row[:10], ",".join(map(str, row[10])))


@pytest.mark.parametrize("name", PLANS)
def test_every_op_of_the_trace_runs_once_in_execution_order(name):
    r = run(PLANS[name], compensation="iter-fisher")
    traced = [key(row) for row in execution_order(r.rows) if row[0] in COMPUTE]
    ran = [key(row) for row in r.measured if row[0] in COMPUTE]
    assert ran == traced
    assert max(Counter(ran).values()) == 1
    for slot in {(row[2], row[3]) for row in r.rows if row[0] in COMPUTE}:  # each slot in the trace's own order
        in_trace = [key(row) for row in r.rows if row[0] in COMPUTE and (row[2], row[3]) == slot]
        assert [k for k in ran if k[2:] == slot] == in_trace
    assert sum(r.executor.updates) == sum(1 for row in r.rows if row[0] == "update")


@pytest.mark.parametrize("name", PLANS)
def test_versions_and_staleness_are_the_traces(name):
    r = run(PLANS[name])
    ops = ("fwd", "bwd", "recompute")
    assert {key(row): row[7:9] for row in r.measured if row[0] in ops} == {
        key(row): row[7:9] for row in r.rows if row[0] in ops
    }
    assert max(row[8] for row in r.rows if row[0] == "bwd") >= 2  # not vacuous: gradients were stale


def test_staleness_histogram_is_the_twins():
    r = run(PLANS["two-workers"])
    twin = [list(h) for h in r.sim.staleness_histogram]
    assert len(twin[0]) >= 3
    assert [h + [0] * (len(t) - len(h)) for h, t in zip(r.executor.records.staleness, twin, strict=True)] == twin


def test_omission_partially_trains_and_accumulation_groups_updates():
    r = run(PLANS["techniques"])
    bottom = r.executor.records.bottom
    entered = bottom >= 0
    assert (~entered).sum() == sum(1 for row in r.rows if row[0] == "drop")  # the rest was dropped
    counts = Counter(bottom[entered].tolist())
    assert set(counts) == {0, 1} and abs(counts[0] - counts[1]) <= 2  # every 2nd datum of a worker stops at 1
    groups = [row[10] for row in r.measured if row[0] == "update" and row[3] == 0]
    assert groups and all(len(s) == 2 for s in groups[:-1])  # c^a = 2 at stage 0
    assert (r.result.trained == entered).all()


def test_without_drain_nothing_after_the_last_arrival_runs():
    r = run(PLANS["two-workers"], drain=False)
    last = max(row[6] for row in r.rows if row[0] == "arrive")
    ran = {key(row) for row in r.measured if row[0] in COMPUTE}
    late = {key(row) for row in r.rows if row[0] in COMPUTE and (row[5] if row[0] == "fwd" else row[6]) > last}
    assert late and not (ran & late)
    assert ran | late == {key(row) for row in r.rows if row[0] in COMPUTE}
    assert not r.result.trained[-1]


def test_a_trace_from_another_plan_is_refused_with_the_row_named():
    rows = run(PLANS["two-workers"]).rows
    i = next(i for i, row in enumerate(rows) if row[0] == "bwd" and row[8] > 0)
    doctored = list(rows)
    doctored[i] = (*rows[i][:7], rows[i][7] + 1, rows[i][8] - 1, *rows[i][9:])
    with pytest.raises(FerretError, match=r"trace row \d+ \(bwd of sample \d+\): .*version"):
        run(PLANS["two-workers"], rows=doctored)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_trace_file_replays_like_the_simulated_rows(tmp_path, fmt):
    plan = PLANS["techniques"]
    first = run(plan)
    path = tmp_path / f"trace.{fmt}"
    with FileTrace(path, fmt) as sink:
        sink.rows.extend(file_row(row) for row in first.rows)
    again = run(plan, rows=load_rows(path, first.setup.stream.arrival_s, plan))
    for name, tensor in first.setup.model.state_dict().items():
        assert torch.equal(tensor, again.setup.model.state_dict()[name]), name
    assert (first.result.predicted == again.result.predicted).all()


def test_trace_rows_outside_the_plan_or_stream_are_refused(tmp_path):
    plan = PLANS["two-workers"]
    rows = run(plan).rows
    path = tmp_path / "trace.jsonl"
    with FileTrace(path) as sink:
        sink.rows.extend(file_row((*row[:3], 7, *row[4:]) if row[0] == "fwd" else row) for row in rows)
    arrival_s = fixtures.setup(n=40, interval_s=1.5).stream.arrival_s
    with pytest.raises(FerretError, match="stage 7, but the plan has 2 workers and 3 stages"):
        load_rows(path, arrival_s, plan)
    with FileTrace(path) as sink:
        sink.rows.extend(file_row(row) for row in rows)
    with pytest.raises(FerretError, match="datum 1 arrives at 1.5 s but the stream's arrives at 2 s"):
        load_rows(path, arrival_s * (4 / 3), plan)
    with pytest.raises(FerretError, match="has 40 arrive rows but the stream has 41 data"):
        check_rows(rows, 41, plan, "t.jsonl")
    with pytest.raises(FerretError, match="sample 40 is outside the stream"):
        check_rows([*rows, ("drop", 40, 0, -1, -1, 0.0, 0.0, -1, 0, 0, ())], 40, plan, "t.jsonl")
