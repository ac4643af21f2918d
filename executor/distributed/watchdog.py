"""Never a hang: a rank that waits too long for the others ends the run, saying what it waited for.

Whatever the bug — a lost message, a protocol slip, a collective some rank never joins — a
rank of a distributed run never waits for other ranks without end. Every blocking wait of the
rank's main thread is announced here (`waiting` / `idle`, then `resumed`); a daemon thread
looks once a second, and when the current wait has lasted longer than the limit it ends the
process with one line (`faults.fatal`: the rank, how long, what it waited for — e.g. "a
message from rank 1 (stream over; in flight here: samples 17, 18; ready but held by the 1F1B
window: …)") and exit status `EXIT_NO_PROGRESS`. The launcher then stops the other ranks.

Only waiting counts, never computing: an op, an evaluation or a checkpoint may take as long as
it takes. The limit is `--watchdog` (seconds, default 300; 0 turns the watchdog off) plus the
wait's own allowance: in a real-time run a rank legitimately hears nothing while the stream is
quiet, so the run loop's waits may also last the stream's longest gap between arrivals. A peer
that died is noticed much sooner, by its closed connection (faults.py); this is for the waits
nobody will ever answer.

A wait nobody answers is a bug (in this rank or another), so before its line the rank dumps
every thread's stack to its stderr (`faulthandler`: the loop, the wire threads, whatever held
them) — the evidence of where it stood. The launcher reports every failed rank's line
(launch.py), so the other ranks' states arrive beside it.

The hot path pays two attribute stores per idle wait: the real-time loop sets `since` itself
(what `idle`/`resumed` do, without the calls); describing the wait is deferred to the moment
the watchdog fires.
"""

from __future__ import annotations

import contextlib
import faulthandler
import sys
import threading
import time
from collections.abc import Callable, Iterator

from executor.distributed.faults import EXIT_NO_PROGRESS, fatal

DEFAULT_LIMIT_S = 300.0
_LOOK_EVERY_S = 1.0

Describe = Callable[[], str]


class Watchdog:
    """One rank's guard against waiting for ever (see the module docstring).

    The main thread announces each blocking wait; a daemon thread ends the process with one line and
    `EXIT_NO_PROGRESS` when a wait outlasts `limit_s` (plus its allowance). `limit_s = 0` disables it.
    """

    def __init__(self, rank: int, limit_s: float = DEFAULT_LIMIT_S) -> None:
        self.rank = rank
        self.limit_s = limit_s
        self.since: float | None = None  # when the current wait began (None: not waiting)
        self._allowance_s = 0.0
        self._describe: Describe = _nothing
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.limit_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="ferret-watchdog", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ the main thread's side
    @contextlib.contextmanager
    def waiting(self, what: str | Describe, allowance_s: float = 0.0) -> Iterator[None]:
        """Announce a blocking wait (a collective, the channels' goodbyes)."""
        self.expect(what if callable(what) else _saying(what), allowance_s)
        self.idle()
        try:
            yield
        finally:
            self.resumed()

    def expect(self, describe: Describe, allowance_s: float = 0.0) -> None:
        """What the coming `idle` waits are for (a loop sets it once, then only `idle`/`resumed`)."""
        self._describe = describe
        self._allowance_s = allowance_s

    def idle(self) -> None:
        self.since = time.monotonic()

    def resumed(self) -> None:
        self.since = None

    # ------------------------------------------------------------------ the watchdog's thread
    def overdue(self, now: float) -> float | None:
        """Seconds the current wait has lasted, if past the limit (else None; always None with
        limit 0 — the thread may already run when a run sets `--watchdog 0`)."""
        since = self.since
        if since is None or self.limit_s <= 0:
            return None
        waited = now - since
        return waited if waited > self.limit_s + self._allowance_s else None

    def _watch(self) -> None:
        while True:
            time.sleep(_LOOK_EVERY_S)
            waited = self.overdue(time.monotonic())
            if waited is not None:
                try:
                    what = self._describe()
                except Exception as exc:  # the main thread changes what it describes meanwhile
                    what = f"(could not be described: {type(exc).__name__}: {exc})"
                with contextlib.suppress(Exception):  # the evidence, never in the way of the exit
                    sys.stderr.write(f"ferret: rank {self.rank}: the watchdog fires; every thread's stack:\n")
                    faulthandler.dump_traceback(sys.stderr, all_threads=True)
                fatal(
                    self.rank,
                    f"no progress for {waited:.0f} s (watchdog, --watchdog {self.limit_s:g}): waiting for {what}",
                    EXIT_NO_PROGRESS,
                )


def _nothing() -> str:
    return "nothing it said"


def _saying(what: str) -> Describe:
    return lambda: what
