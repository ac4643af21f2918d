"""The watchdog: a wait that outlasts its limit ends the process with one line naming it;
computing never does. (The same on real ranks through the launcher: test_ranks.py.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from executor.distributed.faults import EXIT_NO_PROGRESS
from executor.distributed.watchdog import Watchdog
from tests.executor.distributed.harness import run_bounded


def test_only_a_wait_past_its_limit_and_allowance_is_overdue():
    dog = Watchdog(0, limit_s=3.0)
    assert dog.overdue(100.0) is None  # not waiting: computing never counts
    dog.expect(lambda: "x", allowance_s=2.0)
    dog.since = 90.0
    assert dog.overdue(94.0) is None  # 4 s: within 3 + 2
    assert dog.overdue(95.5) == 5.5
    dog.resumed()
    assert dog.overdue(1000.0) is None


def test_limit_zero_never_fires_even_on_a_thread_started_with_the_default():
    dog = Watchdog(0)  # a session starts the thread with the default limit ...
    dog.limit_s = 0  # ... and the run's `--watchdog 0` turns it off afterwards
    dog.idle()
    assert dog.overdue(dog.since + 10_000.0) is None  # type: ignore[operator]


def test_a_context_wait_sets_and_clears_itself():
    dog = Watchdog(0, limit_s=1.0)
    with dog.waiting("every rank to join"):
        assert dog.since is not None
        assert dog._describe() == "every rank to join"
    assert dog.since is None


PROGRAM = """
import time
from executor.distributed.watchdog import Watchdog
dog = Watchdog(1, limit_s=0.5)
dog.start()
time.sleep(2.0)  # computing: never overdue
with dog.waiting(lambda: "a message from rank 0 (the test never sends it)"):
    time.sleep(60)
"""


def test_a_stuck_wait_dumps_every_threads_stack_and_ends_the_process_with_one_line():
    done = run_bounded([sys.executable, "-c", PROGRAM], 30)
    assert done.returncode == EXIT_NO_PROGRESS
    lines = done.stderr.strip().splitlines()
    # The evidence first: the main thread stuck in the program's sleep, and the watchdog's own thread.
    assert lines[0] == "ferret: rank 1: the watchdog fires; every thread's stack:", done.stderr
    assert 'File "<string>", line 8 in <module>' in done.stderr and "in _watch" in done.stderr, done.stderr
    assert sum("no progress for" in line for line in lines) == 1, done.stderr
    assert re.fullmatch(
        r"ferret run: rank 1: no progress for \d+ s \(watchdog, --watchdog 0\.5\): "
        r"waiting for a message from rank 0 \(the test never sends it\)",
        lines[-1],
    ), lines[-1]
    assert 2.0 < done.wall_s < 20


SLEEPER = """
import sys, time
from executor.distributed.faults import fatal_on_failure
def a_long_step():
    print("ready", flush=True)
    time.sleep(3)
with fatal_on_failure(0):
    a_long_step()
"""


def test_sigusr1_dumps_a_ranks_stacks_and_the_rank_goes_on():
    process = subprocess.Popen(
        [sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        time.sleep(0.2)
        os.kill(process.pid, signal.SIGUSR1)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "line 6 in a_long_step" in stderr, stderr
