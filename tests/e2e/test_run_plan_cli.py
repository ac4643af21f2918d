"""`ferret plan … && ferret run --plan plan.json --mode replay …` end to end, and its user errors."""

from __future__ import annotations

import csv
import json

import pytest

from analysis.cli import main
from sim.trace import read_trace
from tests.e2e.roofline_plans import plan_of, roofline_profile


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("plan")
    return plan_of(roofline_profile(folder), folder / "plan.json", "--budget", "max")


def test_plan_then_replay_learns_and_reports(tmp_path, plan_file, capsys):
    out = tmp_path / "run"
    args = ["run", "--plan", str(plan_file), "--mode", "replay", "--dataset", "digits"]
    args += ["--compensation", "iter-fisher", "--device", "roofline:titan-xp", "--samples", "200"]
    assert main([*args, "--exclusive-devices", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ferret plan, P = 4" in printed and "iter-fisher" in printed
    summary = json.loads((out / "summary.json").read_text())
    plan = json.loads(plan_file.read_text())
    assert summary["framework"] == "ferret" and summary["strategy"] == "ferret"
    assert summary["compensation"] == "iter-fisher" and summary["mode"] == "replay"
    assert summary["samples"] == 200 and summary["arrival_interval_s"] == plan["arrival_interval_s"]
    assert summary["online_accuracy"] > 20.0  # 10 classes: learning, not chance
    assert 0 <= summary["test_accuracy"] <= 100 and summary["train_flops"] > 0
    assert summary["trained"] > 180  # exclusive devices: the planned workers absorb the stream
    assert summary["measured_peak_memory_bytes"] > summary["measured_weights_activations_peak_bytes"] > 0
    assert summary["predicted_memory_bytes"] == plan["predicted"]["memory_bytes"]
    assert summary["compensated_stages"] == [0, 1, 2]  # the last stage never sees a stale gradient
    assert summary["peak_memory_by_category"]["compensator"] > 0
    assert summary["mean_staleness"] > 0 and len(summary["staleness_histogram"]) == 4
    config = json.loads((out / "config.json").read_text())
    assert config["framework"] == "pipeline" and config["plan"] == str(plan_file)
    with (out / "metrics.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2  # checkpoints at 100 and 200
    events = list(read_trace(out / "trace.jsonl"))
    kinds = {e.kind for e in events}
    assert {"arrive", "predict", "fwd", "bwd", "update"} <= kinds
    assert sum(e.kind == "arrive" for e in events) == 200
    assert all(e.t_end >= e.t_start >= 0 for e in events)
    assert (out / "chrome_trace.json").stat().st_size > 0 and (out / "accuracy.png").stat().st_size > 0


def test_plan_placement_by_default_and_another_strategy(tmp_path, plan_file):
    folder = plan_file.parent
    gpipe = folder / "gpipe.json"
    assert main(["plan", "--profile", str(folder / "mnistnet.json"), "--strategy", "gpipe", "--out", str(gpipe)]) == 0
    for plan, name in ((plan_file, "ferret"), (gpipe, "gpipe")):
        out = tmp_path / name
        args = ["run", "--plan", str(plan), "--dataset", "digits", "--device", "roofline:titan-xp"]
        assert main([*args, "--samples", "60", "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["strategy"] == name and summary["compensation"] == "none"
        assert summary["sim_config"]["exclusive_devices"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compensation", "adagrad"], "unknown compensation 'adagrad'"),
        (["--compensation-option", "lambda=1"], "--compensation-option lambda: unknown setting"),
        (["--compensation-option", "lambda0=big"], "compensation setting lambda0 must be a number, got 'big'"),
        (["--compensation", "fisher", "--compensation-option", "alpha=1.5"], "alpha must be in [0, 1)"),
        (["--mode", "cluster"], "pipeline mode 'cluster' is not available; choose one of replay, distributed"),
        (["--framework", "1-skip"], "does not combine with --framework 1-skip"),
        (["--update-time", "1us"], "needs --update-time 0"),
        (["--trace", "/nonexistent/trace.jsonl"], "trace not found: /nonexistent/trace.jsonl"),
    ],
)
def test_pipeline_user_errors_are_one_line_and_write_nothing(tmp_path, plan_file, capsys, args, message):
    out = tmp_path / "out"
    base = ["run", "--plan", str(plan_file), "--device", "roofline:titan-xp", "--samples", "20"]
    assert main([*base, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("ferret run: error:"), err
    assert message in err
    assert not out.exists()


def test_plan_and_model_layer_mismatch_is_one_line(tmp_path, plan_file, capsys):
    plan = json.loads(plan_file.read_text())
    plan["partition"] = [0, 2, 5]
    plan["workers"] = [{"offset": 0, "recompute": False, "accumulation": [1, 1], "omission": [0, 0]}]
    plan["placement"] = [[0, 1]]
    wrong = tmp_path / "five-layers.json"
    wrong.write_text(json.dumps(plan))
    out = tmp_path / "out"
    assert main(["run", "--plan", str(wrong), "--device", "roofline:titan-xp", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the plan partitions 5 layers but model 'mnistnet' has 4" in err
    assert not out.exists()


def test_pipeline_flags_without_a_plan_are_refused(tmp_path, capsys):
    for flag in (["--compensation", "fisher"], ["--exclusive-devices"], ["--trace", "t.jsonl"]):
        assert main(["run", *flag, "--samples", "20", "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert "applies to pipeline runs only (give --plan plan.json)" in err
    assert not (tmp_path / "o").exists()


def test_a_trace_from_ferret_simulate_replays_like_the_runs_own(tmp_path, plan_file):
    profile = plan_file.parent / "mnistnet.json"
    sim_dir = tmp_path / "sim"
    assert (
        main(
            ["simulate", "--plan", str(plan_file), "--profile", str(profile), "--samples", "80", "--out", str(sim_dir)]
        )
        == 0
    )
    common = ["run", "--plan", str(plan_file), "--profile", str(profile), "--samples", "80"]
    assert main([*common, "--trace", str(sim_dir / "trace.ftrace"), "--out", str(tmp_path / "followed")]) == 0
    assert main([*common, "--out", str(tmp_path / "own")]) == 0
    followed, own = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("followed", "own"))
    assert followed["schedule"] == str(sim_dir / "trace.ftrace") and own["schedule"] == "sim"
    for key in ("online_accuracy", "test_accuracy", "trained", "updates_per_stage", "staleness_histogram"):
        assert followed[key] == own[key], key
