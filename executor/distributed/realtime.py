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

from executor.distributed.host import BWD, FWD, StageHost
from executor.distributed.ready import RankReadyOps
from executor.distributed.source import StreamSource


def run_realtime(
    host: StageHost,
    ready: RankReadyOps,
    source: StreamSource | None,
    t0_local: float,
    tick: Callable[[], None] | None = None,
) -> float:
    """Run until `STOP`; return the seconds spent waiting with nothing to do. `tick`: the
    checkpointer's turn (checkpoint.py), on the source."""
    transport = host.transport
    clock = time.perf_counter
    idle = 0.0
    while not host.stopped:
        got = transport.receive(0.0)
        while got is not None:
            host.receive(*got)
            got = transport.receive(0.0)
        if source is not None:
            source.release(clock() - t0_local)
            if tick is not None:
                tick()
            if host.stopped:
                break
        op = ready.pop()
        if op is not None:
            host.run(op)
            if op.kind == BWD:
                ready.released(op.worker, op.stage)
            continue
        now = clock()
        wait = None if source is None else source.due_in(now - t0_local)
        got = transport.receive(wait)
        idle += clock() - now
        if got is not None:
            host.receive(*got)
    return idle


def stores(host: StageHost, kind: int, sample: int, stage: int) -> bool:
    """Whether a ready forward will keep its datum at `stage` (its slot's window counts it)."""
    return kind == FWD and stage >= host.bottom_of(sample)
