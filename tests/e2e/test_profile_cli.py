"""`ferret profile` end to end: valid profiles the planner accepts, one-line user errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cli import main
from planner.profile import ModelProfile

REPO = Path(__file__).resolve().parents[2]


def test_measured_convnet_profile(tmp_path, capsys):
    out = tmp_path / "p.json"
    args = ["profile", "--model", "convnet", "--input-shape", "3,32,32", "--repeats", "2", "--warmup", "0"]
    assert main([*args, "--threads", "1", "--out", str(out)]) == 0
    profile = ModelProfile.load(out)
    assert profile.model == "convnet" and profile.source == "measured" and profile.num_layers == 4
    summary = json.loads((tmp_path / "p.summary.json").read_text())
    config = json.loads((tmp_path / "p.config.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.config.json", "p.json", "p.summary.json"]
    assert profile.provenance == {"model": "convnet", "input_shape": [3, 32, 32], "num_classes": 10}
    assert summary["fwd_flops"] == int(profile.fwd_flops.sum())
    assert summary["input_shape"] == [3, 32, 32] and config["input_shape"] == [3, 32, 32]
    assert config["seed"] == 0
    stdout = capsys.readouterr().out
    assert "block1" in stdout and "total" in stdout


def test_roofline_profile_uses_model_default_shape(tmp_path):
    out = tmp_path / "sub" / "r.json"
    assert (
        main(["profile", "--model", "resnet18", "--device", "roofline:h100", "--classes", "100", "--out", str(out)])
        == 0
    )
    profile = ModelProfile.load(out)
    assert profile.source == "roofline" and profile.device == "h100"
    assert profile.fwd_flops.sum() > 1.8e9  # 224×224 by default
    assert json.loads((out.parent / "r.summary.json").read_text())["num_classes"] == 100


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "resnet9000"], "unknown model 'resnet9000'"),
        (["--model", "mnistnet", "--input-shape", "1,4,4"], "at least 6×6"),
        (["--model", "convnet", "--input-shape", "3,x"], "invalid input shape"),
        (["--model", "convnet", "--device", "roofline:abacus"], "unknown roofline device 'abacus'"),
        (["--model", "convnet", "--device", "cuda:3"], "cuda:3"),
        (["--model", "convnet", "--classes", "1"], "classes must be an integer ≥ 2"),
        (["--model", "mlp", "--input-shape", "2000000000"], "--max-memory raises it"),
        (["--model", "mlp", "--seed", "-1"], "seed"),
    ],
)
def test_user_errors_are_one_line_and_write_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "p.json"
    try:
        code = main(["profile", *extra, "--out", str(out)])
    except SystemExit as exc:  # argparse type errors exit from the parser
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err
    assert list(tmp_path.iterdir()) == []


def test_profile_beside_other_files_leaves_them_alone(tmp_path):
    """Class 1 of issue 13: `--out DIR/p.json` writes p.json, p.config.json and p.summary.json;
    the config.json and summary.json another run left in DIR stay byte for byte."""
    theirs = {"config.json": '{"mine": 1}\n', "summary.json": '{"mine": 2}\n'}
    for name, text in theirs.items():
        (tmp_path / name).write_text(text)
    out = tmp_path / "p.json"
    assert main(["profile", "--model", "mlp", "--device", "roofline:h100", "--out", str(out)]) == 0
    assert {name: (tmp_path / name).read_text() for name in theirs} == theirs
    assert (tmp_path / "p.config.json").is_file() and (tmp_path / "p.summary.json").is_file()


def test_subprocess_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "profile", "--model", "nope", "--out", str(tmp_path / "p.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("ferret profile: error: unknown model 'nope'")
    assert "Traceback" not in proc.stderr
