"""Real ranks on 127.0.0.1 over gloo, started by `launch_local` (torch's elastic agent):
messages arrive complete and in order on every channel; a rank that dies or fails makes every
other rank and the launcher exit non-zero with one line naming it; Ctrl-C stops everything.
Every run is bounded (harness.py): a bug fails the test, never hangs the suite."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from tests.executor.distributed.harness import RANKS, alive, run_bounded, wait_for_files

pytestmark = pytest.mark.slow

LIMIT = 120  # seconds, start-up included: three ranks import torch on two loaded cores


def test_three_ranks_exchange_ordered_messages_and_share_one_clock(tmp_path):
    done = run_bounded([*RANKS, "launch", "3", "echo", str(tmp_path), "25"], LIMIT)
    assert done.returncode == 0, done.stderr
    for rank in range(3):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["received"] == {str(r): 25 for r in range(3) if r != rank}
        clock = result["clock"]
        assert clock["same_host"]
        if rank:  # measured by ping-pong although the host is the same: the estimate is ≈ 0
            assert clock["rounds"] == 4
            assert abs(clock["offset_s"]) <= clock["uncertainty_s"] + 1e-3
        else:
            assert clock == {"offset_s": 0.0, "uncertainty_s": 0.0, "same_host": True, "rounds": 0}


@pytest.mark.parametrize("how", ["kill", "raise"])
def test_a_failing_rank_takes_the_run_down_with_one_line(tmp_path, how):
    ranks = 3 if how == "kill" else 2
    done = run_bounded([*RANKS, "launch", str(ranks), how, str(tmp_path), "1"], LIMIT)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    # The failed rank's own last line (or its signal) is the launcher's one line; the survivors,
    # which only lost it, leave theirs to the launcher too.
    cause = "killed by SIGKILL" if how == "kill" else "the test asked this rank to fail"
    assert lines[-1].startswith(f"launcher: rank 1 of {ranks} failed: {cause}"), done.stderr
    assert not any(line.startswith("ferret run: rank") for line in lines), done.stderr
    assert not any("Traceback" in line for line in lines), done.stderr
    for rank in range(ranks):
        assert not alive(json.loads((tmp_path / f"rank{rank}.json").read_text())["pid"])


def test_ctrl_c_stops_every_rank(tmp_path):
    stopped_at = []

    def interrupt(process):
        wait_for_files(tmp_path, 2, process, LIMIT - 30)
        stopped_at.append(time.perf_counter())
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to the foreground group

    done = run_bounded([*RANKS, "launch", "2", "wait", str(tmp_path)], LIMIT, poke=interrupt)
    assert done.returncode == 130, done.stderr
    assert time.perf_counter() - stopped_at[0] < 30
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "launcher: interrupted", done.stderr
    assert not any(line.startswith("ferret run:") for line in lines), done.stderr  # the ranks leave it to the launcher


def test_a_deadlock_ends_by_the_watchdog_with_one_line(tmp_path):
    done = run_bounded([*RANKS, "launch", "2", "stuck", str(tmp_path), "2"], LIMIT)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    said = r"launcher: rank [01] of 2 failed: no progress for \d+ s \(watchdog, --watchdog 2\): waiting for a message"
    # Both ranks wait for ever: the other's end follows (its own watchdog's line, or the agent's stop).
    assert re.match(said + r" nobody sends \(the test's deadlock\)(; then rank [01]: .+)?$", lines[-1]), done.stderr
    assert sum("no progress for" in line for line in lines) == 1, done.stderr
    assert not any("Traceback" in line for line in lines), done.stderr
    for rank in range(2):
        assert not alive(json.loads((tmp_path / f"rank{rank}.json").read_text())["pid"])


def test_a_stall_names_both_sides_and_dumps_the_waiting_ranks_stacks(tmp_path):
    # Rank 1 waits for ever; rank 0 is busy elsewhere, where no watchdog looks (distributed_rate's
    # stall, B5: only rank 1's line reached the launcher, and rank 0's state was unknown).
    done = run_bounded([*RANKS, "launch", "2", "stall", str(tmp_path), "2"], LIMIT)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    said = r"launcher: rank 1 of 2 failed: no progress for \d+ s \(watchdog, --watchdog 2\): waiting for a message"
    said += r" rank 0 never sends \(the test's stall\); then rank 0: stopped by SIGTERM in "
    said += r"body → stall → busy_elsewhere \(ranks.py:\d+\)$"
    assert re.match(said, lines[-1]), done.stderr
    # Rank 1's stacks: its main thread in the wait, its wire threads in theirs.
    dump = done.stderr.split("ferret: rank 1: the watchdog fires; every thread's stack:", 1)[1]
    assert "in stall" in dump and "in _receive_loop" in dump, done.stderr
    for rank in range(2):
        assert not alive(json.loads((tmp_path / f"rank{rank}.json").read_text())["pid"])
