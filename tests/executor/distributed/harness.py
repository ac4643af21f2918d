"""Run a multi-process command so that no bug can hang the suite.

The command runs in its own session; past `timeout` the whole session (launcher, agent,
ranks) is killed and the test fails naming what it was waiting for. Only processes this
harness started are ever signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
RANKS = [sys.executable, "-m", "tests.executor.distributed.ranks"]


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float


def spawn(argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`argv` from the repository root, in a session of its own (so all of it can be killed)."""
    return subprocess.Popen(
        list(argv),
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_bounded(
    argv: Sequence[str],
    timeout: float,
    *,
    env: dict[str, str] | None = None,
    poke: Callable[[subprocess.Popen[str]], None] | None = None,
) -> Finished:
    """Run `argv` from the repository root; `poke(process)` runs while it is alive (e.g. to
    signal it). Kills the whole session and fails the test after `timeout` seconds."""
    started = time.perf_counter()
    process = spawn(argv, env)
    try:
        if poke is not None:
            poke(process)
        stdout, stderr = process.communicate(timeout=max(0.0, timeout - (time.perf_counter() - started)))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(argv)} did not finish in {timeout} s; stderr:\n{stderr[-3000:]}")
    return Finished(process.returncode, stdout, stderr, time.perf_counter() - started)


def run_together(argvs: Sequence[Sequence[str]], timeout: float) -> list[Finished]:
    """Run several commands at once (e.g. one torchrun per "node"), each bounded as `run_bounded`."""
    started = time.perf_counter()
    processes = [spawn(argv) for argv in argvs]
    results = []
    for argv, process in zip(argvs, processes, strict=True):
        try:
            stdout, stderr = process.communicate(timeout=max(0.0, timeout - (time.perf_counter() - started)))
        except subprocess.TimeoutExpired:
            for other in processes:
                if other.poll() is None:
                    os.killpg(other.pid, signal.SIGKILL)
            pytest.fail(f"{' '.join(argv)} did not finish in {timeout} s")
        results.append(Finished(process.returncode, stdout, stderr, time.perf_counter() - started))
    return results


def free_port() -> int:
    """A port nobody listens on now (the rendezvous binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_files(folder: Path, count: int, process: subprocess.Popen[str], timeout: float) -> None:
    """Wait until `folder` holds `count` files (every rank is up), or the process ended."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and process.poll() is None:
        if len(list(folder.iterdir())) >= count:
            return
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
