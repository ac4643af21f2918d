"""One rank's measured trace, on the run's clock, in the shared schema (sim/trace.py).

Times are seconds since the run's start `t0` on rank 0's clock: a local `perf_counter`
reading plus this rank's clock offset (clock.py) minus `t0`. `device` is the rank. Rows are
kept as plain tuples (a 10-tuple, or 11 with an update's tuple of samples: cheap to record
and to gather), merged on rank 0 (`merge_rows`), sorted by end time as the schema requires, and
handed to a sink as typed rows (`as_trace_row`).

Rows: `fwd`/`recompute`/`bwd` spans are the StageRuntime call; `update` is the instant the
backward that closed the group ended (or the flush's span); `send`/`recv` are the wire
threads' spans of an activation, gradient or inference message (`sample`, `worker`, `bytes`
on the wire, and `stage` as the schema says: the sending stage on a `send`, the receiving
stage on a `recv`); `arrive`/`drop` are the source's (at the scheduled arrival time — when the
datum came, not when the loop noticed); `mem` is this rank's ledger total after each op that
changed it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from executor.distributed.protocol import Kind
from executor.distributed.transport import WireEvent
from executor.ledger import ByteLedger
from executor.stage import UpdateResult
from sim.trace import FIELDS, TraceRow

Row = tuple[Any, ...]  # a rank's plain-tuple row (see the module docstring)
T_END = FIELDS.index("t_end")


def as_trace_row(raw: Row) -> TraceRow:
    """A plain-tuple row as the schema's typed row."""
    return TraceRow._make(raw if len(raw) == 11 else (*raw, ()))


_DATA = (Kind.ACT, Kind.GRAD, Kind.INFER)


class RankRecorder:
    """Records one rank's trace rows on the run's clock (see the module docstring).

    `start` fixes the clock's zero on this rank's `perf_counter`; memory rows come from the rank's
    `ByteLedger` when one is given.
    """

    def __init__(self, rank: int, ledger: ByteLedger | None = None) -> None:
        self.rank = rank
        self.t0 = 0.0
        self.rows: list[Row] = []
        self.ledger = ledger
        self._held = -1
        # A peer that starts sooner may send before this rank's loop has woken to `start`: its wire
        # events wait here until the clock's zero is known (else their rows kept raw `perf_counter` times).
        self._started = False
        self._early: list[WireEvent] = []
        self._early_lock = threading.Lock()

    def start(self, t0_local: float) -> None:
        """The run starts at `t0_local`, read on this rank's own `perf_counter`."""
        with self._early_lock:
            self.t0 = t0_local
            self._started = True
            early, self._early = self._early, []
        for event in early:
            self.wire(event)

    def op(
        self,
        kind: str,
        sample: int,
        worker: int,
        stage: int,
        span: tuple[float, float],
        version: int,
        staleness: int,
        nbytes: int,
    ) -> None:
        t0 = self.t0
        e = span[1] - t0
        rows = self.rows
        rows.append((kind, sample, worker, stage, self.rank, span[0] - t0, e, version, staleness, nbytes))
        ledger = self.ledger
        if ledger is not None:  # a `mem` row when the op changed what the rank holds
            held = ledger.current
            if held != self._held:
                self._held = held
                rows.append(("mem", -1, -1, -1, self.rank, e, e, -1, 0, held))

    def update(self, worker: int, stage: int, span: tuple[float, float], update: UpdateResult) -> None:
        e = span[1] - self.t0
        row = ("update", -1, worker, stage, self.rank, e, e, update.version, update.staleness, 0, update.samples)
        self.rows.append(row)

    def instant(self, kind: str, sample: int, worker: int, t: float, nbytes: int = 0) -> None:
        """An `arrive` or `drop` at run time `t` (already on the run's clock)."""
        self.rows.append((kind, sample, worker, -1, -1, t, t, -1, 0, nbytes))

    def wire(self, event: WireEvent) -> None:
        """Called from the transport's threads (list.append is atomic)."""
        if not self._started:
            with self._early_lock:
                if not self._started:
                    self._early.append(event)
                    return
        message = event.message
        if message.kind not in _DATA:
            return
        fields = message.fields
        sample = fields[0]
        if message.kind == Kind.INFER:
            worker, stage, step = -1, fields[1], 1
        else:  # the stage a message is for; an activation comes from below, a gradient from above
            worker, stage, step = fields[1], fields[2], 1 if message.kind == Kind.ACT else -1
        if event.direction == "send":  # the schema: a send row names the sending stage
            stage -= step
        s, e = event.t_start - self.t0, event.t_end - self.t0
        self.rows.append((event.direction, sample, worker, stage, self.rank, s, e, -1, 0, event.nbytes))


def merge_rows(per_rank: Iterable[list[Row]]) -> list[Row]:
    """Every rank's rows in one list, ordered by end time (ties: rank order, then each rank's order)."""
    merged = [row for rows in per_rank for row in rows]
    merged.sort(key=lambda row: row[T_END])  # stable: equal ends keep rank, then emission order
    return merged
