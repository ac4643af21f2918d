"""Where a rank's threads spent a run: on a core, or runnable and waiting for one.

Linux keeps per thread (`/proc/self/task/TID/schedstat`) the nanoseconds it ran and the
nanoseconds it waited on a run queue — ready to run, no core free. A rank has its loop (the
main thread), its wire threads (`ferret-send→…`, `ferret-recv←…`, transport.py) and threads of
its own it does not name (gloo's I/O loop, torch's). `ThreadTimes.take()` on the loop's thread before
and after the run, and `since(before)` gives per role the CPU seconds and the run-queue seconds between them:
on a host with fewer cores than busy threads, the run-queue share is time an op, a message or a
wake-up waited for a core, which nothing inside the executor's code can shorten. Empty where
`/proc` has no schedstat (not Linux).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

ROLES = ("loop", "wire", "other")
_TASKS = "/proc/self/task"


@dataclass(frozen=True)
class ThreadTimes:
    """Per thread id: (role, CPU seconds, run-queue seconds) since the thread started."""

    per_thread: dict[int, tuple[str, float, float]]

    @classmethod
    def take(cls) -> ThreadTimes:
        loop = threading.get_native_id()  # taken by the rank's loop
        wire = {t.native_id for t in threading.enumerate() if t.name.startswith(("ferret-send", "ferret-recv"))}
        out = {}
        try:
            tids = os.listdir(_TASKS)
        except OSError:
            return cls({})
        for name in tids:
            try:
                with open(f"{_TASKS}/{name}/schedstat") as f:
                    ran, waited, _slices = f.read().split()
            except (OSError, ValueError):
                continue  # the thread ended meanwhile, or no schedstat here
            tid = int(name)
            role = "loop" if tid == loop else "wire" if tid in wire else "other"
            out[tid] = (role, int(ran) / 1e9, int(waited) / 1e9)
        return cls(out)

    def since(self, before: ThreadTimes) -> dict[str, dict[str, float]]:
        """Per role, `cpu_s` and `runqueue_s` between `before` and this reading (threads that
        ended in between are not counted; the wire threads start and end with the run's transport,
        so they are counted whole)."""
        out = {role: {"cpu_s": 0.0, "runqueue_s": 0.0} for role in ROLES}
        for tid, (role, ran, waited) in self.per_thread.items():
            _, ran0, waited0 = before.per_thread.get(tid, (role, 0.0, 0.0))
            out[role]["cpu_s"] += ran - ran0
            out[role]["runqueue_s"] += waited - waited0
        return out if self.per_thread else {}
