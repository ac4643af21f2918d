"""`ferret deploy` end to end on this machine (replay executor: fast, one process), and bad input."""

from __future__ import annotations

import json

import pytest

from analysis.cli import main
from tests.e2e.cli_errors import assert_one_line_error

FOLDERS = ("calibration", "calibration-probe", "candidates", "probe", "profile", "run", "validate-calibrated")


def test_the_closed_loop_writes_a_report_with_a_verdict(tmp_path, capsys):
    out = tmp_path / "deploy"
    args = ["deploy", "--model", "mnistnet", "--budget", "max", "--devices", "2", "--dataset", "digits"]
    args += ["--mode", "replay", "--samples", "150", "--probe-samples", "60", "--top-k", "3", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for phase in ("[1/9] profile", "[3/9] probe", "[5/9] choose", "[8/9] recalibrate", "[9/9] report"):
        assert phase in printed, phase
    assert "VERDICT: not judged" in printed  # a replay's timeline is sequential
    for folder in FOLDERS:
        assert (out / folder).is_dir(), folder
    report = (out / "report.md").read_text()
    assert "## Predicted vs measured" in report and "profile only" in report and "recalibrated with the run" in report
    for png in ("candidates.png", "errors.png", "learning_curve.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["errors"]) == {"profile only", "calibrated before the run", "recalibrated with the run"}
    candidates = [json.loads(p.read_text()) for p in sorted((out / "candidates").glob("plan-*.json"))]
    assert 1 <= len({tuple(c["partition"]) for c in candidates}) <= 3  # --top-k 3 partitions, two placements each
    assert summary["chosen_partition"] in [c["partition"] for c in candidates]
    for c in candidates:  # every stage on one device: its owner
        assert all(len({row[j] for row in c["placement"]}) == 1 for j in range(len(c["partition"]) - 1))
    # The run folder is self-contained: validate works on it after the staging folder is gone.
    assert main(["validate", "--predicted", str(out / "sim-calibrated"), "--measured", str(out / "run"),
                 "--out", str(tmp_path / "v")]) == 0  # fmt: skip


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--calibration", "{tmp}/cal"], "has no profile.json"),
        (["--budget", "lots"], "--budget: invalid size 'lots'"),
        (["--compensation", "bogus"], "unknown compensation 'bogus'"),
        (["--arrival-interval", "1ns"], "deploying (the probe and the run) needs"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(tmp_path, capsys, flags, needle):
    out = tmp_path / "deploy"
    (tmp_path / "cal").mkdir()
    code = main(["deploy", *[f.format(tmp=tmp_path) for f in flags], "--out", str(out)])
    assert_one_line_error(capsys, code, needle)
    assert not out.exists()
