"""`ferret plan` end to end: outputs, units, and clean refusals that leave nothing behind."""

import json
import subprocess
import sys

import pytest

from analysis.cli import main
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.strategies import predict
from tests.planner.profiles import hand_profile


@pytest.fixture
def profile_path(tmp_path):
    path = tmp_path / "profile.json"
    hand_profile().save(path)
    return path


def run(argv, capsys):
    code = main(["plan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_good_run_writes_plan_summary_and_config(tmp_path, profile_path, capsys):
    out = tmp_path / "out" / "plan.json"
    code, stdout, err = run(
        ["--profile", str(profile_path), "--budget", "1KiB", "--arrival-interval", "1.5s", "--decay", "0.1/s",
         "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    plan = Plan.load(out, num_layers=3)
    assert plan.strategy == "ferret" and plan.feasible and plan.budget_bytes == 1024
    assert plan.arrival_interval_s == 1.5 and plan.decay_per_s == 0.1
    assert plan.predicted.memory_bytes <= 1024
    assert predict(hand_profile(), plan) == (plan.predicted.adaptation_rate, plan.predicted.memory_bytes)
    summary = json.loads((tmp_path / "out" / "plan.summary.json").read_text())
    assert summary["adaptation_rate"] == plan.predicted.adaptation_rate
    assert 0 < summary["arrival_limited_rate"] <= summary["adaptation_rate"]
    assert summary["memory_bytes"] == plan.predicted.memory_bytes
    assert summary["partition"] == list(plan.partition) and summary["log"]
    config = json.loads((tmp_path / "out" / "plan.config.json").read_text())
    assert config["budget_bytes"] == 1024 and config["arrival_interval_s"] == 1.5 and config["strategy"] == "ferret"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "plan.config.json",
        "plan.json",
        "plan.summary.json",
    ]
    for word in ("strategy", "partition", "techniques", "predicted R", "memory", "1.00 KiB"):
        assert word in stdout


@pytest.mark.parametrize("strategy", ["pipedream", "pipedream-2bw", "gpipe", "1f1b"])
def test_other_strategies_and_min_max_budgets(tmp_path, profile_path, capsys, strategy):
    for budget in ("min", "max"):
        out = tmp_path / f"{strategy}-{budget}.json"
        code, _stdout, err = run(["--profile", str(profile_path), "--strategy", strategy, "--budget", budget,
                                 "--arrival-interval", "auto", "--out", str(out)], capsys)  # fmt: skip
        assert code == 0, err
        plan = Plan.load(out)
        assert plan.strategy == strategy and plan.arrival_interval_s == 2.0  # auto: slowest forward
        summary = json.loads(out.with_name(f"{strategy}-{budget}.summary.json").read_text())
        if budget == "min":
            assert summary["memory_bytes"] == summary["min_memory_bytes"] == summary["budget_bytes"]
        else:
            assert summary["budget_bytes"] is None


def test_builtin_profile_and_devices(tmp_path, capsys):
    out = tmp_path / "plan.json"
    code, _, err = run(["--profile", "builtin:mlp-titan-xp", "--devices", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert Plan.load(out).num_devices == 1


def _refused(tmp_path, capsys, argv, message):
    out = tmp_path / "x" / "plan.json"
    with pytest.raises(SystemExit) as exc:
        main(["plan", *argv, "--out", str(out)])
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize(
    ("budget", "message"),
    [("-1", "must be positive"), ("0", "must be positive"), ("12parsecs", "unknown unit 'parsecs'")],
)
def test_bad_budgets_are_usage_errors(tmp_path, profile_path, capsys, budget, message):
    _refused(tmp_path, capsys, ["--profile", str(profile_path), f"--budget={budget}"], message)


def test_unknown_strategy_is_a_usage_error(tmp_path, profile_path, capsys):
    _refused(tmp_path, capsys, ["--profile", str(profile_path), "--strategy", "zero-bubble"], "invalid choice")


def test_user_errors_exit_2_with_one_line_and_no_files(tmp_path, profile_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "x", "layers": [')
    cases = [
        (["--profile", str(bad)], "not valid JSON"),
        (["--profile", str(tmp_path / "missing.json")], "not found"),
        (["--profile", "builtin:nope"], "unknown built-in profile 'nope'; available:"),
        (
            ["--profile", str(profile_path), "--budget", "100B"],
            "budget 100 B is below the smallest footprint found, 360 B",
        ),
        (["--profile", str(profile_path), "--minibatch", "4"], "--minibatch applies to gpipe and 1f1b only"),
    ]
    for argv, message in cases:
        out = tmp_path / "o" / "plan.json"
        code, _stdout, err = run([*argv, "--out", str(out)], capsys)
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and message in err, err
        assert not out.parent.exists() or not any(out.parent.iterdir())


def test_infeasible_from_a_shell_has_no_traceback(tmp_path, profile_path):
    out = tmp_path / "plan.json"
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "plan", "--profile", str(profile_path), "--budget", "10", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ferret plan: error: budget 10 B is below the smallest footprint found, 360 B"
    ]
    assert "Traceback" not in proc.stderr and not out.exists()
    assert ModelProfile.load(profile_path) == hand_profile()


def test_objective_learning_reads_the_model_fitted_beside_the_profile(tmp_path, profile_path, capsys):
    from planner.learning import LearningModel, beside

    base = ["--profile", str(profile_path), "--arrival-interval", "2s", "--objective", "learning"]
    code, stdout, err = run([*base, "--out", str(tmp_path / "builtin.json")], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "builtin.summary.json").read_text())
    assert summary["objective"] == "learning" and summary["learning_model"] == "built-in"
    # a fit that makes stale gradients worthless: the plan recomputes on the latest weights
    LearningModel(0.0, {"stashed": 5.0, "latest": 0.0}, "test").save(beside(profile_path))
    code, stdout, err = run([*base, "--out", str(tmp_path / "fitted.json")], capsys)
    assert code == 0, err
    plan = Plan.load(tmp_path / "fitted.json", num_layers=3)
    assert all(w.latest for w in plan.workers) and "latest weights" in stdout
    summary = json.loads((tmp_path / "fitted.summary.json").read_text())
    assert (
        summary["learning_model"] == str(beside(profile_path)) and summary["latest_weights_workers"] == plan.num_workers
    )
    assert 0 < summary["learning_score"] <= 1


def test_objective_is_refused_for_other_strategies(tmp_path, profile_path, capsys):
    code, _, err = run(
        ["--profile", str(profile_path), "--strategy", "pipedream", "--objective", "rate", "--out",
         str(tmp_path / "p.json")],
        capsys,
    )  # fmt: skip
    assert code == 2 and "--objective applies to the ferret strategy" in err
    assert not (tmp_path / "p.json").exists()
