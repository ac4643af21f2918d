"""`ferret calibrate`'s per-device stall process: planted in a twin run read as real-time, recovered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analysis.calibrate import CalibrationOptions, MeasuredRun, calibrate
from analysis.calibrate.report import to_markdown
from analysis.calibrate.stalls import STALL_MIN_RATIO
from analysis.run_folder import RunFolder
from analysis.trace_table import load_table
from sim import FileTrace, SimConfig, simulate
from sim.costs import ProfileCosts
from sim.stalls import StallTable
from tests.analysis.known_twin import plain_profile, plan_for, true_profile

PLANTED = StallTable(1.0, (0.3, 0.5, 0.8, 1.2))  # per second of busy device; ops last 0.03–0.2 s


def _measured(folder, source, table=PLANTED):
    """A saturated twin run (every stall falls on an op or a ready gap) with `table`'s stalls."""
    plan = plan_for((0, 2, 4, 6), 2, 0.01)
    # Costed links: the trace has recv rows, from which a job's readiness (and so a ready gap) is known.
    config = SimConfig(op_overhead_s=0.004, link_latency_s=0.001, link_bandwidth_Bps=1e7, stalls=table is not None)
    costs = dataclasses.replace(
        ProfileCosts.from_profiles((true_profile(),), plan.partition, config), stall_table=table
    )
    folder.mkdir(parents=True)
    with FileTrace(folder / "trace.jsonl") as trace:
        simulate(plan, true_profile(), 12000, seed=3, config=config, trace=trace, costs=costs)
    run = RunFolder(folder, folder / "trace.jsonl", source, plan, None, {}, {"sim_config": config.to_json()})
    return MeasuredRun(run, load_table(run.trace_path))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    run = _measured(tmp_path_factory.mktemp("stalls") / "run", "distributed")
    return run, calibrate([run], plain_profile(), CalibrationOptions(host_cores=64))


def test_calibrate_recovers_a_planted_stall_process(planted):
    _, cal = planted
    table = cal.costs.stall_table
    assert table is not None and cal.sim_config.stalls
    count = len(table.durations_s)
    assert count > 100
    assert table.rate_per_s == pytest.approx(PLANTED.rate_per_s, rel=3 / np.sqrt(count))
    # each measured stall is a planted duration (two that fall back to back on one op add up)
    held = np.array(table.durations_s)
    sums = {a + b for a in PLANTED.durations_s for b in PLANTED.durations_s}
    on_table = np.isclose(held[:, None], np.array(sorted({*PLANTED.durations_s, *sums}))[None, :], rtol=1e-6)
    assert on_table.any(axis=1).mean() > 0.95
    assert np.isclose(held[:, None], np.array(PLANTED.durations_s)[None, :], rtol=1e-6).any(axis=1).mean() > 0.8
    assert cal.stalls.mean.value == pytest.approx(PLANTED.mean_s, rel=0.2)


def test_the_stall_rows_leave_the_op_factors(planted):
    # No jitter was planted: with the stalls' excess taken out an op sits at its cell's median, but
    # for the few that started inside a stall and were held for less than a stall's thresholds.
    _, cal = planted
    ratio = np.array(cal.factors.factors) / cal.factors.factors[len(cal.factors.factors) // 2]
    assert np.mean(np.isclose(ratio, 1.0, rtol=1e-6)) > 0.97
    assert cal.factors.largest.value < STALL_MIN_RATIO


def test_the_report_says_what_was_fitted(planted):
    _, cal = planted
    report = to_markdown(cal, plain_profile())
    assert "| stall_rate_per_s |" in report and "| stall_mean_s |" in report
    assert "real-time run" in cal.stalls.rate.how


def test_no_stalls_and_twin_runs_fit_none(tmp_path):
    quiet = calibrate([_measured(tmp_path / "quiet", "distributed", None)], plain_profile())
    assert quiet.costs.stall_table is None and not quiet.sim_config.stalls
    assert "no op or ready gap" in quiet.stalls.rate.how
    twin = calibrate([_measured(tmp_path / "twin", "twin")], plain_profile())
    assert twin.costs.stall_table is None and "no real-time run" in twin.stalls.rate.how
