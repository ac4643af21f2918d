"""`ferret calibrate` end to end: its outputs feed `ferret simulate`, and bad input writes nothing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from analysis.cli import main
from tests.analysis.known_twin import TRUE_CONFIG, plain_profile, plan_for, true_profile
from tests.analysis.twin_runs import edited_copy, simulate_folder
from tests.e2e.cli_errors import assert_one_line_error

OUTPUTS = [
    "calibration.json",
    "calibration.md",
    "config.json",
    "costs.json",
    "profile.json",
    "sim_config.json",
    "summary.json",
]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrate-cli")
    flags = ["--concurrency", "2", "--slowdown", "0.3", "--op-overhead", "4ms", "--update-time", "3ms"]
    flags += ["--link-latency", "2ms", "--link-bandwidth", "200000B"]
    runs = [
        simulate_folder(root / "a", plan_for((0, 2, 4, 6), 3, 0.05), true_profile(), 400, *flags),
        simulate_folder(root / "b", plan_for((0, 1, 3, 6), 2, 0.07, recompute=True), true_profile(), 400, *flags),
    ]
    plain_profile().save(root / "plain.json")
    return root, runs


def _calibrate(runs, profile, out):
    return main(["calibrate", "--measured", *map(str, runs), "--profile", str(profile), "--out", str(out)])


def test_writes_a_calibrated_profile_and_a_sim_config_that_simulate_accepts(measured, capsys):
    root, runs = measured
    out = root / "calibrated"
    assert _calibrate(runs, root / "plain.json", out) == 0
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    profile = json.loads((out / "profile.json").read_text())
    assert profile["source"] == "calibrated"
    config = json.loads((out / "sim_config.json").read_text())
    for key in ("op_overhead_s", "update_s", "slowdown", "link_latency_s", "link_bandwidth_Bps"):
        assert config[key] == pytest.approx(getattr(TRUE_CONFIG, key), rel=1e-6), key
    report = json.loads((out / "calibration.json").read_text())
    assert {p["name"] for p in report["parameters"]} >= {"op_overhead_s", "jitter_sigma", "link_bandwidth_Bps"}
    assert all("stderr" in p for p in report["parameters"])
    assert "| op_overhead_s |" in (out / "calibration.md").read_text()
    assert "op_overhead_s" in capsys.readouterr().out
    # The calibrated twin reproduces the 'measured' run it was fitted on, from the profile and
    # sim_config.json, or from the fitted cost model (costs.json) with the same sim_config.json:
    # op for op the same durations, and the schedule's metrics within the fidelity bar
    # (parameters exact to ~1e-10 still flip a few same-instant events, and what follows moves).
    plan = root / "a-plan.json"
    args = ["simulate", "--plan", str(plan), "--profile", str(out / "profile.json"), "--samples", "400"]
    args += ["--sim-config", str(out / "sim_config.json")]
    for name, extra in (("resim", []), ("resim-costs", ["--costs", str(out / "costs.json")])):
        assert main([*args, *extra, "--out", str(root / name)]) == 0
        v = root / f"v-{name}"
        assert main(["validate", "--predicted", str(root / name), "--measured", str(runs[0]), "--out", str(v)]) == 0
        report = json.loads((v / "validation.json").read_text())
        for k in report["op_durations"]:
            assert abs(k["median_error"]) < 1e-6, (name, k)
        for m in report["metrics"]:
            if m["tolerance"] is not None:
                assert m["within_tolerance"], (name, m)


def test_simulate_refuses_costs_of_another_model(measured, tmp_path, capsys):
    root, _ = measured
    out = tmp_path / "cal"
    assert _calibrate([root / "a"], root / "plain.json", out) == 0
    other = dataclasses.replace(
        plain_profile(),
        layers=tuple(dataclasses.replace(x, name=f"y{i}") for i, x in enumerate(plain_profile().layers)),
    )
    other.save(tmp_path / "other.json")
    code = main(["simulate", "--plan", str(root / "a-plan.json"), "--profile", str(tmp_path / "other.json"),
                 "--costs", str(out / "costs.json"), "--out", str(tmp_path / "sim")])  # fmt: skip
    assert_one_line_error(capsys, code, "costs are for layers")
    assert not (tmp_path / "sim").exists()


def test_a_profile_that_does_not_match_the_runs_is_refused(measured, tmp_path, capsys):
    _, runs = measured
    out = tmp_path / "out"
    small = dataclasses.replace(plain_profile(), layers=plain_profile().layers[:4])
    small.save(tmp_path / "small.json")
    assert_one_line_error(capsys, _calibrate(runs, tmp_path / "small.json", out), "has 4 layers", "partitions 6")
    renamed = dataclasses.replace(
        plain_profile(),
        layers=tuple(dataclasses.replace(layer, name=f"x{i}") for i, layer in enumerate(plain_profile().layers)),
    )
    renamed.save(tmp_path / "renamed.json")
    assert_one_line_error(capsys, _calibrate(runs, tmp_path / "renamed.json", out), "layers ['x0'", "are not those of")
    assert not out.exists()


def test_empty_truncated_or_foreign_traces_are_refused(measured, tmp_path, capsys):
    root, runs = measured
    out = tmp_path / "out"
    empty = edited_copy(runs[0], tmp_path / "empty", lambda rows: [])
    assert_one_line_error(capsys, _calibrate([empty], root / "plain.json", out), "is empty")
    broken = edited_copy(runs[0], tmp_path / "broken", lambda rows: rows)
    text = (broken / "trace.jsonl").read_text()
    (broken / "trace.jsonl").write_text(text[: len(text) // 3])
    assert_one_line_error(capsys, _calibrate([broken], root / "plain.json", out), "is not a trace event")
    fewer = edited_copy(runs[0], tmp_path / "fewer", lambda rows: [r for r in rows if r["stage"] != 2])
    assert_one_line_error(capsys, _calibrate([fewer], root / "plain.json", out), "ops on 2 stages but its plan has 3")
    assert_one_line_error(capsys, _calibrate([tmp_path / "nowhere"], root / "plain.json", out), "not a folder")
    assert not out.exists()
