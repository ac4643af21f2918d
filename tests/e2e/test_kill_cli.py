"""Killing a command (issue 13): SIGINT, SIGTERM and SIGKILL during `run`, `simulate` and
`whatif`. The previous contents of `--out` survive byte for byte; SIGINT and SIGTERM end with one
line and leave no staging folder or lock; after SIGKILL the next write of `--out` removes the
staging folder the killed run left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.cli import main

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "CI": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kill-inputs")
    profile = ["profile", "--model", "mnistnet", "--input-shape", "1,8,8", "--device", "roofline:h100"]
    assert main([*profile, "--out", str(root / "p.json")]) == 0
    assert main(["plan", "--profile", str(root / "p.json"), "--out", str(root / "plan.json")]) == 0
    return root


def _long(command: str, inputs: Path) -> list[str]:
    """A call of `command` that works for minutes (limits raised so it may)."""
    p, plan = str(inputs / "p.json"), str(inputs / "plan.json")
    return {
        "simulate": ["simulate", "--plan", plan, "--profile", p, "--samples", "1000000"],
        "run": ["run", "--profile", p, "--samples", "2000000", "--eval-every", "0"],
        "whatif": ["whatif", "--profile", p, "--budgets", "64KiB:64MiB:x1.05", "--samples", "20000", "--jobs", "1"],
    }[command] + ["--max-events", "1000000000", "--max-points", "100000"]


def _small_write(inputs: Path, out: Path) -> None:
    argv = ["simulate", "--plan", str(inputs / "plan.json"), "--profile", str(inputs / "p.json"), "--samples", "20"]
    assert main([*argv, "--out", str(out)]) == 0


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
@pytest.mark.parametrize("command", ["simulate", "run", "whatif"])
def test_a_killed_command_leaves_the_previous_output_intact(inputs, tmp_path, command, sig):
    out = tmp_path / "out"
    _small_write(inputs, out)
    before = _contents(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "analysis", *_long(command, inputs), "--out", str(out)],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*.partial")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"{command} ended before the signal: {proc.stderr.read() if proc.stderr else ''}"
    time.sleep(0.5)  # into the work
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert _contents(out) == before
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        _small_write(inputs, out)  # the next write of the same output cleans up after the killed one
    else:
        # After Ctrl-C CPython may end by re-raising SIGINT (an interrupted import marks the
        # interrupt unhandled for good); a shell shows 130 either way.
        word, codes = ("interrupted", (130, -signal.SIGINT)) if sig == signal.SIGINT else ("terminated", (143,))
        assert proc.returncode in codes and err.strip() == f"ferret {command}: {word}", err
    assert _leftovers(tmp_path) == []
