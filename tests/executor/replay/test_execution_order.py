"""Trace rows → execution order: forwards at their start, version ties resolved, arrivals last."""

from __future__ import annotations

from executor.replay import execution_order
from sim.trace import TraceRow


def row(kind, sample, stage, t0, t1, version=0, staleness=0, worker=0, samples=()):
    return TraceRow(kind, sample, worker, stage, stage, t0, t1, version, staleness, 0, samples)


def names(rows):
    return [(r.kind, r.sample, r.stage) for r in rows]


def test_a_forward_runs_at_its_start_before_an_update_that_lands_while_it_runs():
    # Trace order (by end): datum 1's update of stage 0 ends at 5, datum 2's forward (started at
    # 4 on version 0) ends at 6. The forward must see version 0: it goes first.
    rows = [
        row("bwd", 1, 0, 3, 5, version=0, worker=1),
        row("update", -1, 0, 3, 5, version=0, worker=1, samples=(1,)),
        row("fwd", 2, 0, 4, 6, version=0),
    ]
    assert names(execution_order(rows)) == [("fwd", 2, 0), ("bwd", 1, 0), ("update", -1, 0)]


def test_at_one_instant_the_version_decides_and_frees_come_first():
    # Both at t = 5: a forward on version 1 started after the update 0 → 1 (so after it); a
    # forward on version 0 of stage 0 started before it (so before it); stage 1's backward,
    # which closes no group at stage 0, frees memory first.
    rows = [
        row("bwd", 7, 1, 2, 5, version=3, worker=1),
        row("bwd", 1, 0, 3, 5, version=0, worker=1),
        row("update", -1, 0, 3, 5, version=0, worker=1, samples=(1,)),
        row("fwd", 3, 0, 5, 6, version=1),
        row("fwd", 2, 0, 5, 7, version=0, worker=2),
    ]
    assert names(execution_order(rows)) == [
        ("bwd", 7, 1),
        ("fwd", 2, 0),
        ("bwd", 1, 0),
        ("update", -1, 0),
        ("fwd", 3, 0),
    ]


def test_arrivals_see_updates_that_end_when_they_arrive():
    rows = [
        row("arrive", 4, -1, 5, 5),
        row("bwd", 1, 0, 3, 5),
        row("update", -1, 0, 3, 5, samples=(1,)),
        row("arrive", 5, -1, 6, 6),
    ]
    assert names(execution_order(rows)) == [("bwd", 1, 0), ("update", -1, 0), ("arrive", 4, -1), ("arrive", 5, -1)]
