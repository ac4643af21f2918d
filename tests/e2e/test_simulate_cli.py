"""`ferret simulate` end to end: outputs, and user errors that write nothing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from analysis.cli import main
from planner.plan import WorkerConfig
from sim import read_trace
from tests.sim.builders import balanced_profile, make_plan

SUMMARY_FIELDS = (
    "adaptation_rate",
    "peak_memory_bytes",
    "throughput_per_s",
    "drop_rate",
    "latency_p50_s",
    "latency_p99_s",
    "events",
    "wall_s",
)


@pytest.fixture
def inputs(tmp_path):
    profile = balanced_profile(3)
    plan = make_plan([WorkerConfig.default(n, 3) for n in range(2)], 3, 0.1875).with_prediction(3.5, 12345, True)
    profile.save(tmp_path / "profile.json")
    plan.save(tmp_path / "plan.json")
    return tmp_path


def _simulate(inputs, *extra):
    return main(["simulate", "--plan", str(inputs / "plan.json"), "--profile", str(inputs / "profile.json"), *extra])


def test_writes_summary_trace_chrome_trace_timeline_and_config(inputs, capsys):
    out = inputs / "sim"
    assert _simulate(inputs, "--samples", "200", "--exclusive-devices", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "chrome_trace.json",
        "config.json",
        "memory_timeline.csv",
        "summary.json",
        "trace.ftrace",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert all(summary[key] is not None for key in SUMMARY_FIELDS)
    assert summary["drop_rate"] == 0.0 and summary["samples"] == 200
    assert summary["predicted"] == {"adaptation_rate": 3.5, "memory_bytes": 12345}
    assert summary["events"] == sum(1 for _ in read_trace(out / "trace.ftrace"))
    chrome = json.loads((out / "chrome_trace.json").read_text())
    assert {e["tid"] for e in chrome["traceEvents"] if e["ph"] == "X"} == set(range(6))
    config = json.loads((out / "config.json").read_text())
    assert config["sim_config"]["exclusive_devices"] is True and config["samples"] == 200
    with (out / "memory_timeline.csv").open() as f:
        timeline = list(csv.DictReader(f))
    assert list(timeline[0]) == ["t_s", "peak_bytes", *(f"device_{d}" for d in range(6))]
    assert max(int(r["peak_bytes"]) for r in timeline) == summary["peak_memory_bytes"]
    per_device = [max(int(r[f"device_{d}"]) for r in timeline) for d in range(6)]
    assert per_device == summary["peak_memory_per_device"]
    assert "R = " in capsys.readouterr().out


def test_csv_trace_poisson_arrivals_and_a_calibrated_config(inputs):
    calibrated = inputs / "calibrated.json"
    calibrated.write_text(json.dumps({"op_overhead_s": 0.001, "concurrency": 2}))
    out = inputs / "sim"
    code = _simulate(
        inputs, "--samples", "50", "--arrival", "poisson", "--trace-format", "csv", "--sim-config", str(calibrated),
        "--link-latency", "1ms", "--out", str(out),
    )  # fmt: skip
    assert code == 0
    assert (out / "trace.csv").read_text().startswith("kind,sample,")
    config = json.loads((out / "config.json").read_text())["sim_config"]
    assert (config["op_overhead_s"], config["concurrency"], config["link_latency_s"]) == (0.001, 2, 0.001)
    assert json.loads((out / "summary.json").read_text())["arrival"] == "poisson"


def test_trace_arrivals_replay_a_csv_of_times(inputs):
    times = inputs / "arrivals.csv"
    times.write_text("t\n0\n0.5\n0.75\n2\n")
    out = inputs / "sim"
    assert _simulate(inputs, "--samples", "4", "--arrival", f"trace:{times}", "--out", str(out)) == 0
    arrivals = [e.t_start for e in read_trace(out / "trace.ftrace") if e.kind == "arrive"]
    assert arrivals == [0.0, 0.5, 0.75, 2.0]


def _one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err


def test_a_bad_plan_file_is_one_line_and_writes_nothing(inputs, capsys):
    (inputs / "plan.json").write_text("{ not json")
    out = inputs / "sim"
    _one_line_error(capsys, _simulate(inputs, "--out", str(out)), "plan.json", "not valid JSON")
    assert not out.exists()
    (inputs / "plan.json").write_text(json.dumps({"strategy": "ferret"}))
    _one_line_error(capsys, _simulate(inputs, "--out", str(out)), "plan.workers is missing")
    assert not out.exists()


def test_a_plan_beyond_the_profile_s_layers_is_refused(inputs, capsys):
    balanced_profile(2).save(inputs / "profile.json")  # 4 layers; the plan's partition ends at 6
    out = inputs / "sim"
    _one_line_error(capsys, _simulate(inputs, "--out", str(out)), "ends at layer 6", "has 4 layers")
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (("--samples", "0"), "samples must be an integer ≥ 1, got '0'"),
        (("--arrival", "weekly"), "unknown arrival process 'weekly'"),
        (("--concurrency", "0"), "concurrency must be an integer in [1, 1024]"),
        (("--link-latency", "fast"), "invalid time 'fast'"),
    ],
)
def test_bad_options_are_one_line_errors(inputs, capsys, extra, needle):
    out = inputs / "sim"
    try:
        code = _simulate(inputs, *extra, "--out", str(out))
    except SystemExit as exc:  # argparse usage errors exit from the parser
        code = exc.code
    _one_line_error(capsys, code, needle)
    assert not out.exists()


def test_the_installed_entry_point_reports_errors_without_a_traceback(inputs):
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "simulate", "--plan", str(inputs / "missing.json"),
         "--profile", str(inputs / "profile.json"), "--out", str(inputs / "sim")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"ferret simulate: error: plan not found: {inputs / 'missing.json'}"]
    assert not (inputs / "sim").exists()


def test_simulates_a_plan_made_by_ferret_plan(tmp_path, capsys):
    # By default a plan gives each (worker, stage) its own device, as the closed forms assume;
    # `--devices 3` (= P) puts stage j of all 4 workers on device j, and the twin shows the cost.
    runs = {}
    for name, devices in (("shared", ["--devices", "3"]), ("alone", [])):
        plan = tmp_path / f"plan-{name}.json"
        assert main(["plan", "--profile", "builtin:mnistnet-titan-xp", "--budget", "max", "--objective", "rate", *devices,
                     "--out", str(plan)]) == 0  # fmt: skip
        predicted = json.loads(plan.read_text())["predicted"]
        out = tmp_path / name
        args = ["simulate", "--plan", str(plan), "--profile", "builtin:mnistnet-titan-xp", "--samples", "2000"]
        assert main([*args, "--out", str(out)]) == 0
        runs[name] = json.loads((out / "summary.json").read_text())
    assert runs["alone"]["predicted"] == runs["shared"]["predicted"] == predicted
    assert runs["shared"]["workers_per_device"] == 4 and runs["alone"]["workers_per_device"] == 1
    assert runs["shared"]["drop_rate"] > 0.5 > runs["alone"]["drop_rate"]  # 4 workers contend for 3 devices
    assert runs["alone"]["adaptation_rate"] > 2 * runs["shared"]["adaptation_rate"]
    assert runs["alone"]["adaptation_rate"] <= predicted["adaptation_rate"]
    assert "workers share a device" in capsys.readouterr().out


def test_an_unknown_builtin_profile_lists_the_shipped_ones(inputs, capsys):
    out = inputs / "sim"
    code = main(["simulate", "--plan", str(inputs / "plan.json"), "--profile", "builtin:nope", "--out", str(out)])
    _one_line_error(capsys, code, "unknown built-in profile 'nope'", "mnistnet-titan-xp")
    assert not out.exists()
