"""The measured trace: each op the replay runs, in the shared schema, with its wall-clock time.

Times are seconds since the replay began. The replay runs one op at a time, so a row's
duration is the op's real cost on this machine (a first profiler of op costs), not its place
in a parallel schedule. `version`, `staleness` and `bytes` are what the StageRuntime reports
(the measured activation bytes of a forward). An `update` row spans the optimizer step inside
its backward only when the group was flushed separately; otherwise it is the instant the
backward that applied it ended (the backward's duration includes the step).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sim.trace import TraceRow, TraceSink


class Recorder:
    def __init__(self, sink: TraceSink | None) -> None:
        self.sink = sink
        self.t0 = time.perf_counter()

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def instant(self, kind: str, sample: int, worker: int, nbytes: int = 0) -> None:
        """An `arrive` or `drop` row, now."""
        if self.sink is not None:
            t = time.perf_counter() - self.t0
            self.sink.add(TraceRow(kind, sample, worker, -1, -1, t, t, -1, 0, nbytes))
            self.sink.maybe_flush()

    def op(self, row: TraceRow, t0: float, t1: float, version: int, staleness: int, nbytes: int) -> None:
        """A `fwd`, `recompute` or `bwd` that ran from `t0` to `t1` (perf_counter): `row` with the
        measured times, versions and bytes."""
        if self.sink is not None:
            self.sink.add(
                row._replace(
                    t_start=t0 - self.t0, t_end=t1 - self.t0, version=version, staleness=staleness, bytes=nbytes
                )
            )

    def update(
        self,
        worker: int,
        stage: int,
        device: int,
        t0: float,
        t1: float,
        version: int,
        staleness: int,
        samples: Sequence[int],
    ) -> None:
        if self.sink is not None:
            s, e = t0 - self.t0, t1 - self.t0
            self.sink.add(TraceRow("update", -1, worker, stage, device, s, e, version, staleness, 0, tuple(samples)))

    def predictions(self, samples: Sequence[int], t0: float, t1: float) -> None:
        if self.sink is not None:
            s, e = t0 - self.t0, t1 - self.t0
            for sample in samples:
                self.sink.add(TraceRow("predict", sample, -1, -1, -1, s, e))

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()
