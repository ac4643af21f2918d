"""`loop_s`: the executor's time between ops, from the gaps before jobs whose input was ready."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.calibrate import calibrate
from analysis.calibrate.loop import fit_loop, ready_gaps
from analysis.trace_table import TraceTable
from sim.trace import TraceRow
from tests.analysis.known_twin import TRUE_CONFIG, plain_profile, training_runs


def row(kind: str, sample: int, stage: int, device: int, t0: float, t1: float) -> TraceRow:
    return TraceRow(kind, sample, 0, stage, device, t0, t1, 0, 0, 0, ())


def arrive(sample: int, t: float) -> TraceRow:
    return row("arrive", sample, -1, -1, t, t)


def table(rows: list[TraceRow]) -> TraceTable:
    return TraceTable.from_rows(sorted(rows, key=lambda r: r.t_end))


def two_rank_trace() -> list[TraceRow]:
    """Datum 0 and 1 through stage 0 (device 0) and stage 1 (device 1); gaps noted per job."""
    return [
        arrive(0, 0.0),
        row("fwd", 0, 0, 0, 0.0, 1.0),
        arrive(1, 0.5),
        row("fwd", 1, 0, 0, 1.25, 2.0),  # arrived during the last op: gap 0.25
        row("recv", 0, 1, 1, 1.0, 1.5),
        row("fwd", 0, 1, 1, 1.5, 2.5),  # first on its device: no gap
        row("recv", 1, 1, 1, 2.0, 2.25),
        row("fwd", 1, 1, 1, 2.625, 3.0),  # input there at 2.25 < 2.5: gap 0.125
        row("bwd", 0, 1, 1, 3.125, 4.0),  # its forward ended at 2.5: gap 0.125
        row("recompute", 1, 1, 1, 4.5, 5.0),  # ready (its forward ended at 3.0): gap 0.5
        row("bwd", 1, 1, 1, 5.0625, 6.0),  # the recompute's own backward: one job, no gap
        row("recv", 0, 0, 0, 6.0, 7.0),
        row("bwd", 0, 0, 0, 7.5, 8.0),  # its gradient came at 7.0 > 2.0: waited, no gap
        row("recv", 1, 0, 0, 7.0, 7.75),
        row("bwd", 1, 0, 0, 8.25, 9.0),  # gradient at 7.75 < 8.0: gap 0.25
    ]


def test_gaps_only_where_the_next_job_was_ready():
    gaps = {d.device: d.gaps.tolist() for d in ready_gaps(table(two_rank_trace()))}
    assert gaps == {0: [0.25, 0.25], 1: [0.125, 0.125, 0.5]}
    fit = fit_loop([("distributed", table(two_rank_trace()))])
    assert fit.value == pytest.approx(1.25 / 5)
    assert fit.fitted and "per device" in fit.how


def test_a_preempted_gap_is_left_out_of_the_mean():
    rows = [arrive(s, 0.0) for s in range(5)]
    t = 0.0
    for s, gap in enumerate([0.01, 0.01, 0.01, 1.0]):  # the last: 100× the median
        rows.append(row("fwd", s, 0, 0, t, t + 1.0))
        t += 1.0 + gap
    rows.append(row("fwd", 4, 0, 0, t, t + 1.0))
    fit = fit_loop([("distributed", table(rows))])
    assert fit.value == pytest.approx(0.01)
    assert "1 over 20× the median left out" in fit.how


def test_replays_and_twins_have_no_loop_to_fit():
    for source in ("replay", "twin"):
        fit = fit_loop([(source, table(two_rank_trace()))])
        assert fit.value == 0.0 and not fit.fitted and "no distributed run" in fit.how
    idle = [arrive(0, 0.0), row("fwd", 0, 0, 0, 0.0, 1.0), arrive(1, 2.0), row("fwd", 1, 0, 0, 2.5, 3.0)]
    fit = fit_loop([("distributed", table(idle))])
    assert fit.value == 0.0 and not fit.fitted and "no job was ready" in fit.how


@settings(max_examples=50, deadline=None)
@given(
    gaps=st.lists(st.floats(1e-5, 1e-4), min_size=1, max_size=40),
    ops=st.lists(st.floats(1e-4, 1e-2), min_size=41, max_size=41),
    idle=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_drawn_gaps_are_recovered(gaps, ops, idle):
    """Jobs back to back with drawn gaps; some data arrive only after the device went idle (their
    gaps are waiting, not the loop, and must not count)."""
    rows, t, expected = [], 0.0, []
    for s, op in enumerate(ops[: len(gaps) + 1]):
        if s and idle[s - 1]:
            t += 0.5  # the device waits for this datum's arrival
            rows.append(arrive(s, t))
        else:
            rows.append(arrive(s, 0.0))
            if s:
                t += gaps[s - 1]
                expected.append(gaps[s - 1])
        rows.append(row("fwd", s, 0, 0, t, t + op))
        t += op
    fit = fit_loop([("distributed", table(rows))])
    if not expected:
        assert not fit.fitted
    else:
        assert fit.value == pytest.approx(np.mean(expected), rel=1e-6)


def test_a_twin_s_loop_comes_back_inside_its_ops(tmp_path):
    """A twin charges its loop inside the op rows: calibrated on its runs, the op overhead holds
    both and `loop_s` is 0, so the calibrated twin charges each job what the true one did."""
    config = dataclasses.replace(TRUE_CONFIG, op_overhead_s=0.003, loop_s=0.001)
    c = calibrate(training_runs(tmp_path, config), plain_profile())
    assert c.sim_config.loop_s == 0.0 and not c.loop.fitted
    assert c.sim_config.op_overhead_s == pytest.approx(0.004, rel=1e-6)
