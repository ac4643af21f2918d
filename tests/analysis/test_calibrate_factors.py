"""`ferret calibrate`'s `empirical` jitter sequence: measured op-time factors of real-time runs, in time order."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from analysis.calibrate import CalibrationOptions, MeasuredRun, calibrate
from analysis.calibrate.factors import JITTER_BLOCK, fit_factor_sequence
from analysis.cli import main
from analysis.run_folder import RunFolder
from analysis.trace_table import load_table
from sim import FileTrace, MemoryTrace, simulate
from sim.costs import ProfileCosts
from tests.analysis.known_twin import TRUE_CONFIG, plain_profile, plan_for, true_profile
from tests.e2e.cli_errors import assert_one_line_error

KNOWN = (0.8, 0.9, 1.0, 1.0, 1.0, 1.0, 1.2, 1.5, 3.0, 30.0)  # median 1: a cell's median is its base


def test_the_sequence_is_each_stream_s_factors_in_time_order_times_e_to_the_minus_half_sigma_squared():
    ratios = np.array([3.0, 1.0, 30.0, 0.5, np.nan, 2.0, 1.5])
    stream = np.array([1, 0, 1, 0, 0, 0, 1])  # (run, device) numbers
    start = np.array([0.2, 0.9, 0.1, 0.3, 0.4, 0.5, 0.3])
    sequence = fit_factor_sequence(np.log(ratios), 0.4, stream, start)
    # stream 0 by start: 0.5 (0.3), 2.0 (0.5), 1.0 (0.9); then stream 1: 30.0, 3.0, 1.5; the NaN row skipped
    assert np.allclose(np.array(sequence.factors) * math.exp(0.4**2 / 2), [0.5, 2.0, 1.0, 30.0, 3.0, 1.5], rtol=1e-12)
    first = fit_factor_sequence(np.log(ratios), 0.4, stream, start, most=4)  # beyond `most`: the first ones
    assert np.allclose(np.array(first.factors) * math.exp(0.08), [0.5, 2.0, 1.0, 30.0], rtol=1e-12)
    assert sequence.stall_share.value == pytest.approx(1 / 6) and sequence.largest.value == pytest.approx(30.0)
    assert sequence.varies


def test_no_real_time_rows_give_no_sequence():
    sequence = fit_factor_sequence(np.full(5, np.nan), 0.3, np.zeros(5), np.arange(5.0))
    assert sequence.factors == () and not sequence.varies
    assert not sequence.stall_share.fitted and "no real-time run" in sequence.stall_share.how


def _measured(folder, source):
    """A twin run with empirical jitter from KNOWN, read back as a run of `source`."""
    plan = plan_for((0, 2, 4, 6), 2, 0.08)
    # One op at a time per device: a (row type, stage)'s ops all have one median, whatever the schedule.
    config = dataclasses.replace(TRUE_CONFIG, concurrency=1, slowdown=0.0, jitter="empirical")
    costs = dataclasses.replace(
        ProfileCosts.from_profiles((true_profile(),), plan.partition, config), jitter_sequence=KNOWN
    )
    folder.mkdir(parents=True)
    with FileTrace(folder / "trace.jsonl") as trace:
        simulate(plan, true_profile(), 1500, seed=3, config=config, trace=trace, costs=costs)
    run = RunFolder(folder, folder / "trace.jsonl", source, plan, None, {}, {"sim_config": config.to_json()})
    return MeasuredRun(run, load_table(run.trace_path))


@pytest.fixture(scope="module")
def real_time(tmp_path_factory):
    run = _measured(tmp_path_factory.mktemp("factors") / "run", "distributed")
    return run, calibrate([run], plain_profile(), CalibrationOptions(host_cores=64))


def test_calibrate_recovers_a_known_table_from_a_real_time_run(real_time):
    _, cal = real_time
    assert cal.sim_config.jitter == "empirical" and cal.sim_config.jitter_block == JITTER_BLOCK
    measured = np.array(cal.costs.jitter_sequence) * math.exp(cal.sim_config.jitter_sigma**2 / 2)
    on_known = np.isclose(measured[:, None], np.array(KNOWN)[None, :], rtol=1e-6).any(axis=1)
    assert on_known.mean() > 0.95  # a factor over its cell's median: KNOWN's values (cells of a few rows aside)
    for q in (0.05, 0.3, 0.5, 0.8, 0.95):
        lo, hi = np.quantile(KNOWN, [max(q - 0.1, 0), min(q + 0.1, 1)], method="inverted_cdf")
        assert lo * (1 - 1e-6) <= np.quantile(measured, q, method="inverted_cdf") <= hi * (1 + 1e-6)
    assert cal.factors.stall_share.value == pytest.approx(0.1, abs=0.02)
    assert cal.factors.largest.value == pytest.approx(30.0, rel=1e-6)


def test_the_calibrated_twin_s_op_medians_are_the_measured_ones(real_time):
    # The normalisation: base (= median · e^{σ²/2}) × a factor (= ratio · e^{-σ²/2}) = median × ratio;
    # the twin's rows also hold the executor's loop (`loop_s`, between the measured rows), jittered.
    run, cal = real_time
    loop = cal.sim_config.loop_s * math.exp(-(cal.sim_config.jitter_sigma**2) / 2)
    plan = run.folder.plan
    trace = MemoryTrace()
    costs = cal.costs.check(cal.profile).for_partition(plan.partition)
    # i.i.d. draws: blocks of 32 keep the medians but let a run's sample of them wander (KNOWN's
    # median sits on a step of 0.6 of the factors, so a run of a few dozen blocks may land on 1.2)
    iid = dataclasses.replace(cal.sim_config, jitter_block=1)
    simulate(plan, cal.profile, 1500, seed=11, config=iid, trace=trace, costs=costs)
    ours = [(r.kind, r.stage, r.t_end - r.t_start) for r in trace.events() if r.kind in ("fwd", "bwd")]
    table = run.table
    for kind in ("fwd", "bwd"):
        for j in range(plan.num_stages):
            theirs = table.duration[table.mask(kind) & (table.stage == j)]
            mine = [d for k, s, d in ours if k == kind and s == j]
            assert np.median(mine) == pytest.approx(np.median(theirs) + loop, rel=0.005), (kind, j)


def test_twin_runs_keep_the_log_normal(tmp_path):
    run = _measured(tmp_path / "run", "twin")
    cal = calibrate([run], plain_profile())
    assert cal.sim_config.jitter == "lognormal" and cal.costs.jitter_sequence == ()
    assert "no real-time run" in cal.factors.stall_share.how


def test_the_cli_refuses_a_bad_sequence_a_bad_block_and_empirical_without_a_sequence(real_time, tmp_path, capsys):
    run, cal = real_time
    plan, profile = tmp_path / "plan.json", tmp_path / "profile.json"
    run.folder.plan.save(plan)
    cal.profile.save(profile)
    cal.sim_config.save(tmp_path / "sim_config.json")
    good = cal.costs.to_json()
    args = ["simulate", "--plan", str(plan), "--profile", str(profile), "--samples", "50"]
    args += ["--sim-config", str(tmp_path / "sim_config.json")]
    for name, table, why in (
        ("negative", [-1.0, 2.0], "finite and ≥ 0"),
        ("empty", [], "empty"),
    ):
        (tmp_path / f"{name}.json").write_text(json.dumps({**good, "jitter_sequence": table}))
        code = main([*args, "--costs", str(tmp_path / f"{name}.json"), "--out", str(tmp_path / name)])
        assert_one_line_error(capsys, code, "jitter_sequence", why)
        assert not (tmp_path / name).exists()
    (tmp_path / "nan.json").write_text(json.dumps(good)[:-1] + ', "jitter_sequence": [1.0, NaN]}')
    assert_one_line_error(capsys, main([*args, "--costs", str(tmp_path / "nan.json"), "--out", str(tmp_path / "n")]))
    assert_one_line_error(capsys, main([*args, "--out", str(tmp_path / "none")]), "jitter 'empirical'", "--costs")
    assert not (tmp_path / "none").exists()
    good_costs = ["--costs", str(tmp_path / "good.json")]
    (tmp_path / "good.json").write_text(json.dumps(good))
    for block in ("0", "-3"):  # a block of no ops: argparse's one line, exit 2
        with pytest.raises(SystemExit) as exc:
            main([*args, *good_costs, "--jitter-block", block, "--out", str(tmp_path / "b")])
        assert_one_line_error(capsys, exc.value.code, "--jitter-block", "jitter_block must be an integer in [1, ")
        assert not (tmp_path / "b").exists()
    lognormal = dataclasses.replace(cal.sim_config, jitter="lognormal", jitter_block=1)
    lognormal.save(tmp_path / "lognormal.json")
    plain = [a if a != str(tmp_path / "sim_config.json") else str(tmp_path / "lognormal.json") for a in args]
    code = main([*plain, *good_costs, "--jitter-block", "8", "--out", str(tmp_path / "b")])
    assert_one_line_error(capsys, code, "jitter_block 8 draws measured factors in blocks", "'lognormal'")
    assert not (tmp_path / "b").exists()
    assert main([*args, "--costs", str(tmp_path / "good.json"), "--out", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "summary.json").exists()


def test_whatif_takes_the_calibration_s_costs(real_time, tmp_path, capsys):
    """A calibration of real-time runs (jitter `empirical`) sweeps budgets in `ferret whatif` with
    its costs.json; without it the sweep is refused in one line, nothing written."""
    _, cal = real_time
    profile, config, costs = tmp_path / "profile.json", tmp_path / "sim_config.json", tmp_path / "costs.json"
    cal.profile.save(profile)
    cal.sim_config.save(config)
    cal.costs.save(costs)
    args = ["whatif", "--profile", str(profile), "--sim-config", str(config), "--budgets", "auto:3"]
    args += ["--samples", "40", "--jobs", "1", "--no-progress"]
    assert_one_line_error(capsys, main([*args, "--out", str(tmp_path / "none")]), "jitter 'empirical'", "--costs")
    assert not (tmp_path / "none").exists()
    assert main([*args, "--costs", str(costs), "--out", str(tmp_path / "ok")]) == 0
    assert json.loads((tmp_path / "ok" / "config.json").read_text())["costs"] == str(costs)
    # the sweep drew from the sequence: the same sweep with a log-normal and no costs differs
    assert main([*args, "--jitter", "0.3", "--out", str(tmp_path / "lognormal")]) == 0
    ours, plain = ((tmp_path / d / "whatif.csv").read_text() for d in ("ok", "lognormal"))
    assert len(ours.splitlines()) > 1 and ours != plain
