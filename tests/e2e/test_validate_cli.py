"""`ferret validate` end to end: outputs, a replay run against its twin, and bad input."""

from __future__ import annotations

import json

import pytest

from analysis.cli import main
from planner.plan import WorkerConfig
from tests.analysis.twin_runs import edited_copy, simulate_folder
from tests.e2e.cli_errors import assert_one_line_error
from tests.e2e.roofline_plans import plan_of, roofline_profile
from tests.sim.builders import balanced_profile, make_plan

OUTPUTS = [
    "config.json",
    "durations.png",
    "gantt.png",
    "memory.png",
    "summary.json",
    "validation.json",
    "validation.md",
]


def _plan(workers: int = 2, interval: float = 0.1):
    return make_plan([WorkerConfig.default(n, 3) for n in range(workers)], 3, interval)


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate-cli")
    profile = balanced_profile(3)
    return {
        "base": simulate_folder(root / "base", _plan(), profile, 200, "--trace-memory"),
        "other-plan": simulate_folder(root / "other-plan", _plan(workers=3), profile, 200),
        "other-length": simulate_folder(root / "other-length", _plan(), profile, 150),
        "other-rate": simulate_folder(root / "other-rate", _plan(interval=0.125), profile, 200),
    }


def _validate(predicted, measured, out):
    return main(["validate", "--predicted", str(predicted), "--measured", str(measured), "--out", str(out)])


def test_writes_the_report_the_pictures_and_a_summary(sims, tmp_path, capsys):
    out = tmp_path / "v"
    assert _validate(sims["base"], sims["base"], out) == 0
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    report = json.loads((out / "validation.json").read_text())
    assert {m["name"] for m in report["metrics"]} >= {"throughput_per_s", "drop_rate", "latency_p99_s"}
    assert all(m["error"] == 0 for m in report["metrics"])
    assert "| throughput_per_s |" in (out / "validation.md").read_text()
    for png in ("gantt.png", "memory.png", "durations.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    assert "throughput_per_s" in capsys.readouterr().out


@pytest.mark.parametrize(
    "other, needle",
    [
        ("other-plan", "different plans (workers"),
        ("other-length", "different streams (200 vs 150 arrivals)"),
        ("other-rate", "different streams: arrivals differ"),
    ],
)
def test_traces_of_different_runs_or_streams_are_refused(sims, tmp_path, capsys, other, needle):
    out = tmp_path / "v"
    assert_one_line_error(capsys, _validate(sims["base"], sims[other], out), needle)
    assert not out.exists()


def test_an_empty_or_truncated_trace_is_refused(sims, tmp_path, capsys):
    out = tmp_path / "v"
    empty = edited_copy(sims["base"], tmp_path / "empty", lambda rows: [])
    assert_one_line_error(capsys, _validate(sims["base"], empty, out), "is empty")
    cut = edited_copy(sims["base"], tmp_path / "cut", lambda rows: rows[: len(rows) // 2])
    (cut / "summary.json").write_text((sims["base"] / "summary.json").read_text())  # it says how long it was
    assert_one_line_error(capsys, _validate(sims["base"], cut, out), "truncated")
    broken = tmp_path / "broken"
    edited_copy(sims["base"], broken, lambda rows: rows)
    text = (broken / "trace.jsonl").read_text()
    (broken / "trace.jsonl").write_text(text[: len(text) // 2])  # cut mid-line
    assert_one_line_error(capsys, _validate(sims["base"], broken, out), "is not a trace event")
    assert_one_line_error(capsys, _validate(sims["base"], tmp_path / "nowhere", out), "not a folder")
    assert not out.exists()


def test_a_replay_run_is_compared_on_durations_drops_staleness_and_memory(tmp_path, capsys):
    profile = roofline_profile(tmp_path)
    plan = plan_of(profile, tmp_path / "plan.json", "--budget", "max", "--devices", "2")
    common = ["--plan", str(plan), "--profile", str(profile), "--samples", "120"]
    assert main(["simulate", *common, "--out", str(tmp_path / "sim")]) == 0
    assert main(["run", *common, "--mode", "replay", "--dataset", "digits", "--out", str(tmp_path / "run")]) == 0
    out = tmp_path / "v"
    assert _validate(tmp_path / "sim", tmp_path / "run", out) == 0
    report = json.loads((out / "validation.json").read_text())
    assert report["clock"] == "sequential"
    metrics = {m["name"]: m for m in report["metrics"]}
    for name in ("throughput_per_s", "adaptation_rate", "latency_p50_s"):
        assert metrics[name]["error"] is None and "not comparable" in metrics[name]["note"]
    # The replay followed the twin's schedule: the same drops, staleness and F4-convention memory.
    assert abs(metrics["drop_rate"]["error"]) < 2.0
    assert metrics["peak_memory_bytes"]["error"] == pytest.approx(0.0, abs=1e-12)
    assert {k["kind"] for k in report["op_durations"]} >= {"fwd", "bwd"}
    assert report["ops_paired"] > 300
