"""`ferret run --plan … --costs costs.json`: the twin that schedules a replay run (and predicts a
distributed one) takes `ferret calibrate`'s fitted cost model, measured op-time factors included;
a calibration that says `empirical` without its costs, costs without a plan, and costs of
another model are each one line, with nothing written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from analysis.cli import main
from planner.profile import ModelProfile
from sim.config import SimConfig
from sim.fitted_costs import LayerCosts
from tests.e2e.cli_errors import assert_one_line_error
from tests.e2e.roofline_plans import plan_of, roofline_profile

SCALE, FACTOR = 3.0, 2.0  # the fitted layers 3× the profile's, and every op drawn × 2


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """A roofline profile of mnistnet, its plan, a calibration-like sim_config.json (`empirical`)
    and a costs.json whose layers take SCALE × the profile's times and whose table is one FACTOR."""
    folder = tmp_path_factory.mktemp("costs")
    profile = roofline_profile(folder)
    plan = plan_of(profile, folder / "plan.json", "--budget", "max")
    slower = json.loads(plan.read_text()) | {"arrival_interval_s": 2e-3}  # a stream the fitted ops keep up with
    plan.write_text(json.dumps(slower))
    layers = ModelProfile.load(profile).layers
    costs = LayerCosts(
        names=tuple(layer.name for layer in layers),
        t_fwd=tuple(SCALE * layer.t_fwd_s for layer in layers),
        t_bwd=tuple(SCALE * layer.t_bwd_s for layer in layers),
        t_rec=tuple(SCALE * layer.t_fwd_s for layer in layers),
        jitter_sequence=(FACTOR,),
    )
    costs.save(folder / "costs.json")
    dataclasses.replace(SimConfig(), jitter="empirical", exclusive_devices=True).save(folder / "sim_config.json")
    return profile, plan, folder / "sim_config.json", folder / "costs.json"


def _run(made, out: Path, *extra: str) -> int:
    _, plan, _, _ = made
    args = ["run", "--plan", str(plan), "--mode", "replay", "--dataset", "digits", "--device", "roofline:titan-xp"]
    return main([*args, "--samples", "40", *extra, "--out", str(out)])


def test_the_run_s_twin_is_ferret_simulate_s_with_the_same_costs(tmp_path, made):
    profile, plan, sim_config, costs = made
    calibrated = ["--sim-config", str(sim_config), "--costs", str(costs)]
    assert _run(made, tmp_path / "cal", *calibrated) == 0
    assert _run(made, tmp_path / "plain", "--exclusive-devices") == 0
    args = ["simulate", "--plan", str(plan), "--profile", str(profile), "--samples", "40", *calibrated]
    assert main([*args, "--out", str(tmp_path / "sim")]) == 0
    ours, plain, twin = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("cal", "plain", "sim"))
    for key in ("drop_rate", "latency_p50_s", "latency_p99_s", "throughput_per_s"):
        assert ours[f"sim_{key}"] == twin[key], key
    # SCALE × FACTOR slower ops: the calibrated twin predicts longer latencies than the profile's
    assert ours["sim_latency_p50_s"] > 3 * plain["sim_latency_p50_s"]
    assert ours["sim_config"]["jitter"] == "empirical"
    assert json.loads((tmp_path / "cal" / "config.json").read_text())["costs"] == str(costs)


def test_empirical_needs_its_costs_and_costs_need_a_plan(tmp_path, made, capsys):
    _, _, sim_config, costs = made
    assert_one_line_error(capsys, _run(made, tmp_path / "a", "--sim-config", str(sim_config)), "--costs")
    code = main(["run", "--costs", str(costs), "--samples", "20", "--out", str(tmp_path / "b")])
    assert_one_line_error(capsys, code, "--costs applies to pipeline runs only")
    other = json.loads(costs.read_text())
    other["layers"][0]["name"] = "not-mnistnet"
    (tmp_path / "other.json").write_text(json.dumps(other))
    code = _run(made, tmp_path / "c", "--costs", str(tmp_path / "other.json"))
    assert_one_line_error(capsys, code, "--costs: costs are for layers")
    assert_one_line_error(capsys, _run(made, tmp_path / "d", "--costs", "/nonexistent/costs.json"), "costs")
    assert not any((tmp_path / name).exists() for name in "abcd")
