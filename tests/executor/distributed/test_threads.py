"""threads.py: per thread role, the CPU and run-queue seconds between two readings (Linux)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from executor.distributed.threads import ROLES, ThreadTimes

linux = pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="no /proc schedstat here")


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@linux
def test_roles_get_the_cpu_their_threads_spent() -> None:
    before = ThreadTimes.take()
    gate = threading.Event()

    def wire_work() -> None:
        gate.wait()
        _burn(0.05)

    wire = threading.Thread(target=wire_work, name="ferret-send→9")
    wire.start()
    _burn(0.05)
    during = ThreadTimes.take()  # the wire thread is alive (and named) here
    gate.set()
    wire.join(timeout=30)
    got = during.since(before)
    assert set(got) == set(ROLES)
    assert got["loop"]["cpu_s"] >= 0.04  # this thread burned 50 ms of CPU
    assert got["wire"]["cpu_s"] < 0.04  # the wire thread had not burned yet when read
    assert all(v >= 0 for role in got.values() for v in role.values())
    after = ThreadTimes({tid: (role, cpu + 1.0, rq + 0.5) for tid, (role, cpu, rq) in during.per_thread.items()})
    assert after.since(during)["loop"] == pytest.approx({"cpu_s": 1.0, "runqueue_s": 0.5})
