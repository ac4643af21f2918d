"""The real-time driver: one rank's loop from the run's start to `STOP`.

Each turn: take every message that has arrived (the wire threads filled the inbox meanwhile),
release the arrivals whose time has come (the source), then run the best ready op (1F1B,
ready.py). With nothing to run, wait for a message — on the source, no longer than the next
arrival. On the CPU one op runs at a time: ops are measured as they really cost, and the
admission of a datum that arrives during an op is decided when the op ends (its `arrive` row
keeps its true arrival time).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from executor.distributed.batches import BatchBook
from executor.distributed.host import StageHost
from executor.distributed.ready import RankReadyOps
from executor.distributed.source import StreamSource
from executor.distributed.watchdog import Watchdog


def run_realtime(
    host: StageHost,
    ready: RankReadyOps,
    source: StreamSource | None,
    t0_local: float,
    watchdog: Watchdog,
    quiet_s: float = 0.0,
    tick: Callable[[], None] | None = None,
    book: BatchBook | None = None,
) -> float:
    """Run until `STOP`; return the seconds spent waiting with nothing to do. `quiet_s`: the
    longest the stream is silent (the watchdog allows a wait that long on top of its limit);
    `tick`: the checkpointer's turn (checkpoint.py), on the source; `book`: a batched strategy's
    (batches.py), for the watchdog's line."""
    transport = host.transport
    inbox = transport.inbox  # `empty()` on it: the turn's poll costs one C call when nothing came
    clock, monotonic = time.perf_counter, time.monotonic
    idle = 0.0
    watchdog.expect(lambda: describe_wait(host, ready, source, book), quiet_s)
    while True:
        while not inbox.empty():
            got = transport.receive(0.0)
            if got is not None:  # (a goodbye or a fault takes a turn too)
                host.receive(*got)
        if source is not None:
            now = clock() - t0_local
            if now >= source.due_s:
                source.release(now)
            if tick is not None:
                tick()
        # `STOP` may have come among the messages just taken: waiting now would wait for ever
        # (nothing more comes but the peers' goodbyes).
        if host.stopped:
            break
        op = ready.pop()
        if op is not None:
            host.run(*op)
            continue
        now = clock()
        wait = None if source is None else source.due_in(now - t0_local)
        watchdog.since = monotonic()  # `watchdog.idle()` and `.resumed()`, inline: once per wait
        got = transport.receive(wait)
        watchdog.since = None
        idle += clock() - now
        if got is not None:
            host.receive(*got)
    return idle


def describe_wait(
    host: StageHost, ready: RankReadyOps, source: StreamSource | None, book: BatchBook | None = None
) -> str:
    """What a rank with nothing to run waits for, in words (the watchdog's line)."""
    if source is None:
        what = "a message from another rank"
    elif source.stream_over:
        what = "a message from another rank (the stream is over"
        what += f"; data of workers {[w for w, f in enumerate(source.flushed) if not f]} unfinished)"
    elif source.paused:
        what = f"a message from another rank (the stream is paused for a checkpoint at datum {source.next})"
    else:
        what = f"a message or datum {source.next}'s arrival"
    line = f"{what}; in flight here: {_some(sorted(host.flights))}; ready but held by the 1F1B window: "
    line += _some(ready.held())
    return line if book is None else f"{line}; backwards parked at GPipe's barrier: {_some(book.describe())}"


def _some(items: list, most: int = 8) -> str:
    if not items:
        return "none"
    return ", ".join(map(str, items[:most])) + (f" and {len(items) - most} more" if len(items) > most else "")
