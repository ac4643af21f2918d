"""Checkpoint, SIGKILL, resume — on real ranks (gloo, 127.0.0.1).

A real-time P = 2 run on 2 ranks checkpoints every 20 arrivals; once the first checkpoint is
complete, rank 1 is killed with SIGKILL. The launcher and rank 0 must exit non-zero within
30 s naming rank 1, leaving no result behind. The run resumed from the checkpoint then trains
every datum: each one's gradient is applied exactly once at each stage it reaches — none lost
at the cut, none trained twice — and the merged trace covers the whole stream.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter

import pytest

from tests.executor.distributed.harness import run_bounded
from tests.executor.distributed.pipelines import CHECKPOINT_AT, CHECKPOINT_INTERVAL, CHECKPOINT_N

pytestmark = pytest.mark.slow

LIMIT = 180


def launcher(program: str, out) -> list[str]:
    argv = ["-m", "tests.executor.distributed.pipelines", program, str(out)]
    return [sys.executable, "-c", f"from executor.distributed.launch import launch_local; launch_local({argv!r}, 2)"]


def test_a_killed_run_resumes_from_its_checkpoint_and_trains_every_datum_once(tmp_path):
    complete = tmp_path / "ckpt" / f"at-{CHECKPOINT_AT:09d}" / "meta.json"
    killed_at: list[float] = []

    def kill_after_first_checkpoint(process) -> None:
        deadline = time.perf_counter() + LIMIT - 30
        while not complete.exists() and process.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.02)
        killed_at.append(time.perf_counter())
        os.kill(int((tmp_path / "pid1").read_text()), signal.SIGKILL)

    first = run_bounded(launcher("checkpoint", tmp_path), LIMIT, poke=kill_after_first_checkpoint)
    assert first.returncode != 0, "the run ended before the test could kill it"
    assert time.perf_counter() - killed_at[0] < 30
    lines = first.stderr.strip().splitlines()
    assert "rank 1 of 2 failed: killed by SIGKILL" in lines[-1], first.stderr[-2000:]
    assert any(line.startswith("ferret run: rank 0: lost rank 1") for line in lines), first.stderr[-2000:]
    assert not (tmp_path / "first.json").exists() and not (tmp_path / "first.trace.jsonl").exists()

    resumed = run_bounded(launcher("resume", tmp_path), LIMIT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((tmp_path / "resumed.json").read_text())
    assert report["trained"] + report["dropped"] == CHECKPOINT_N
    rows = [json.loads(line) for line in (tmp_path / "resumed.trace.jsonl").read_text().splitlines()]
    assert sorted(r["sample"] for r in rows if r["kind"] == "arrive") == list(range(CHECKPOINT_N))
    applied = Counter((r["stage"], s) for r in rows if r["kind"] == "update" for s in r["samples"])
    assert max(applied.values()) == 1  # no gradient applied twice
    trained = [i for i, done in enumerate(report["trained_mask"]) if done]
    assert all(applied[(stage, i)] == 1 for i in trained for stage in (0, 1))  # no omission: every stage
    # Data after the cut were trained by the resumed run, on the stream's own time axis.
    first_resumed = min(r["t_start"] for r in rows if r["kind"] == "fwd" and r["sample"] >= CHECKPOINT_AT)
    assert first_resumed >= CHECKPOINT_AT * CHECKPOINT_INTERVAL
