"""Run a multi-process command so that no bug can hang the suite.

The command runs in its own session; past `timeout` the whole session (launcher, agent,
ranks) is killed and the test fails naming what it was waiting for. Only processes this
harness started are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
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


TOKEN = "FERRET_TEST_PROCESS"  # set in every process a test starts; inherited by its ranks


def spawn(argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`argv` from the repository root, in a session of its own, marked with a token in its
    environment that every descendant inherits — torch's elastic agent starts each rank in a
    session of its own, so a process group does not reach them, but the token does."""
    token = uuid.uuid4().hex
    process = subprocess.Popen(
        list(argv),
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {}), TOKEN: token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _TOKENS[process.pid] = token
    return process


_TOKENS: dict[int, str] = {}


def kill_all(process: subprocess.Popen[str]) -> None:
    """SIGKILL `process` and every process carrying its token (its ranks, wherever they went)."""
    marker = f"{TOKEN}={_TOKENS.get(process.pid, '-')}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if marker in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    """What a killed process wrote; never waits long (a survivor may still hold the pipes)."""
    try:
        return process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        return "", "(the output could not be read: a process kept the pipes open)"


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
        kill_all(process)
        stdout, stderr = _finish(process)
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
                kill_all(other)
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
