"""Issue 13's guarantees for what came after it: validate, calibrate, deploy, budgeted runs and
`run --mode distributed` refuse bad input with one line, exit 2 and nothing written."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from analysis.calibrate.params import Fitted
from analysis.cli import main
from executor.distributed.checkpoint import check_root
from planner.errors import FerretError
from tests.e2e.test_hardening_cli import refused, snapshot


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """p.json and mlp.json (roofline), plan.json and a simulation and replay of it (40 samples)."""
    root = tmp_path_factory.mktemp("made")
    roofline = ["--device", "roofline:h100"]
    p, plan = str(root / "p.json"), str(root / "plan.json")
    for argv in (
        ["profile", "--model", "mnistnet", "--input-shape", "1,8,8", *roofline, "--out", p],
        ["profile", "--model", "mlp", "--input-shape", "64", *roofline, "--out", str(root / "mlp.json")],
        ["plan", "--profile", p, "--out", plan],
        ["simulate", "--plan", plan, "--profile", p, "--samples", "40", "--out", str(root / "sim")],
        ["run", "--plan", plan, "--profile", p, "--samples", "40", "--eval-every", "0", "--out", str(root / "replay")],
    ):
        assert main(argv) == 0
    return root


def _of_mlp(made: Path, target: Path) -> Path:
    """A copy of the replay whose summary says it ran mlp."""
    shutil.copytree(made / "replay", target)
    summary = json.loads((target / "summary.json").read_text())
    summary["provenance"]["model"] = "mlp"
    (target / "summary.json").write_text(json.dumps(summary))
    return target


def test_validate_refuses_a_run_of_another_model_unless_forced(made, tmp_path, capsys):
    other = _of_mlp(made, tmp_path / "other")
    argv = ["validate", "--predicted", made / "sim", "--measured", other, "--out", tmp_path / "v"]
    assert "model mlp, not mnistnet (--force to go on anyway)" in refused(capsys, *argv)
    assert not (tmp_path / "v").exists()
    assert main([str(a) for a in [*argv, "--force"]]) == 0
    assert "note: --force: --measured was made for model mlp, not mnistnet" in capsys.readouterr().out


def test_calibrate_refuses_a_run_of_another_model(made, tmp_path, capsys):
    other = _of_mlp(made, tmp_path / "other")
    argv = ["calibrate", "--measured", other, "--profile", made / "p.json", "--out", tmp_path / "c"]
    assert "does not match --profile: model mlp, not mnistnet" in refused(capsys, *argv)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--seed", str(2**40)], "must be a seed in [0, 4294967295]"),
        (["--stream", "nope"], "unknown stream 'nope'"),
        (["--arrival", "nope"], "unknown arrival process 'nope'"),
        (["--compensation", "nope"], "unknown compensation 'nope'"),
        (["--samples", str(10**14)], "above the limit of 50,000,000 samples (--max-events raises it)"),
    ],
)
def test_deploy_refuses_before_its_first_phase(tmp_path, capsys, flags, needle):
    assert needle in refused(capsys, "deploy", *flags, "--out", tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--compute-budget", "1e20"], "training steps per sample over 30 samples needs"),
        (["--compute-budget", "1e-30"], "must be 0 or a FLOP count in [1, 1e+21]"),
        (["--algorithm", "alsar", "--sampler-temperature", "1e-300"], "must be in [1e-06, 1e+06]"),
    ],
)
def test_budgets_are_bounded(made, tmp_path, capsys, flags, needle):
    argv = ["run", "--profile", made / "p.json", "--samples", "30", "--algorithm", "er", *flags]
    assert needle in refused(capsys, *argv, "--out", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_distributed_run_refused_in_its_ranks_says_one_line(made, tmp_path, capfd):
    plan2 = tmp_path / "plan2.json"
    assert main(["plan", "--profile", str(made / "p.json"), "--devices", "2", "--out", str(plan2)]) == 0
    capfd.readouterr()
    argv = ["run", "--plan", plan2, "--profile", made / "p.json", "--mode", "distributed", "--nproc", "2"]
    assert main([str(a) for a in [*argv, "--dataset", "nope", "--out", tmp_path / "r"]]) == 2
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "failed: unknown dataset 'nope'" in lines[0], lines
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_folder_holds_checkpoints_only_and_stays_apart_from_the_output(made, tmp_path):
    before = snapshot(made / "replay")
    with pytest.raises(FerretError, match="which is no checkpoint"):
        check_root(made / "replay", tmp_path / "out")
    assert snapshot(made / "replay") == before
    for inside in (tmp_path / "out", tmp_path / "out" / "ck", tmp_path):
        with pytest.raises(FerretError, match="overlap"):
            check_root(inside, tmp_path / "out")
    (tmp_path / "ck" / "at-000000005").mkdir(parents=True)
    (tmp_path / "ck" / ".at-000000010.partial").mkdir()
    check_root(tmp_path / "ck", tmp_path / "out")
    check_root(tmp_path / "new", tmp_path / "out")


def test_a_fit_below_what_a_trace_resolves_is_zero_or_free():
    assert Fitted("op_overhead_s", 3e-24, 0.0, "s").value == 0.0
    assert Fitted("op_overhead_s", 2e-6, 0.0, "s").value == 2e-6
    assert math.isinf(Fitted("link_bandwidth_Bps", 3e29, 0.0, "B/s").value)
    assert Fitted("link_bandwidth_Bps", 1e9, 0.0, "B/s").value == 1e9
