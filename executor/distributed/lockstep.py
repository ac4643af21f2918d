"""The lockstep driver (`--follow-trace`): each rank runs its own ops in a trace's order.

No clock: every rank walks the trace's rows in execution order (the replay's order,
`execution_order`) and runs the rows of the stages it owns, waiting for a row's input (an
activation or a gradient from another rank) when it has not arrived yet. A rank waits only for
what a row earlier in that one global order produced, so the walk cannot deadlock, and every
stage sees exactly the replay executor's ops in the replay's order: the final weights are
bit-identical to the replay's on the same trace (tested).

The source (stage 0's owner) admits a datum at its stage-0 forward row and, at the row of the
backward that ends the datum (its lowest stage, maybe on another rank), waits for that rank's
`DONE` and runs the algorithm's `after_update` there — so ER's buffer changes in the trace's
order too. Every version, staleness and update is checked against the trace as the replay
checks it; a trace of another plan or stream stops the run naming the row. Updates are dated
by the trace (its rows' ends), so delays and adaptation rates are the followed schedule's.
"""

from __future__ import annotations

from collections.abc import Sequence

from executor.distributed.host import BWD, FWD, StageHost
from executor.ocl.setup import RunSetup
from executor.stage import UpdateResult
from planner.errors import FerretError
from sim.trace import TraceRow


def stale_stages(rows: Sequence[TraceRow]) -> set[int]:
    """Stages the trace ever hands a stale gradient (only they need a compensator)."""
    return {row.stage for row in rows if row.kind == "bwd" and row.staleness > 0}


class Lockstep:
    def __init__(self, host: StageHost, setup: RunSetup) -> None:
        self.host = host
        self.ready: set[tuple[int, int, int]] = set()
        host.on_ready = lambda op: self.ready.add((op.kind, op.sample, op.stage))
        host.defer_done = True
        host.on_done = lambda sample, worker: None
        stream = setup.stream
        device = setup.torch_device
        self.x = stream.dataset.x_train
        self.y = stream.dataset.y_train
        self.order = stream.order.tolist()
        self.task = stream.task.tolist()
        self.device = device
        self.bottom: dict[int, int] = {}
        self.applied: dict[tuple[int, int], UpdateResult] = {}

    def run(self, rows: Sequence[TraceRow]) -> None:
        for index, row in enumerate(rows):
            try:
                self.step(row)
            except FerretError as exc:
                raise FerretError(f"follow-trace, row {index + 1} ({row.kind} of sample {row.sample}): {exc}") from None

    def step(self, row: TraceRow) -> None:
        host = self.host
        host.schedule_time = row.t_end
        kind, sample, worker, stage = row.kind, row.sample, row.worker, row.stage
        if kind in ("fwd", "recompute", "bwd", "update") and not host.owns(stage):
            if kind == "bwd" and host.rank == host.source and self.bottom.get(sample) == stage:
                self._wait_done(sample)
            return
        if kind == "fwd":
            if stage == 0:
                self._admit(sample, worker)
            else:
                self._wait((FWD, sample, stage))
            self.ready.discard((FWD, sample, stage))
            _check(host.forward(sample, stage).version, row.version, "ran on version")
        elif kind == "recompute":
            self._wait((BWD, sample, stage))
            _check(host.recompute(sample, stage), row.version, "recomputed on version")
        elif kind == "bwd":
            self._wait((BWD, sample, stage))
            self.ready.discard((BWD, sample, stage))
            result = host.backward(sample, stage)
            _check(result.version, row.version, "back-propagated against version")
            _check(result.staleness, row.staleness, "had staleness")
            if result.update is not None:
                self.applied[(worker, stage)] = result.update
        elif kind == "update":
            applied = self.applied.pop((worker, stage), None)
            if applied is None:  # a group the trace closes early (the stream ended, a short batch)
                applied = host.flush_stage(stage, worker)
                if applied is None:
                    raise FerretError(f"update of stage {stage} for worker {worker}, which holds no gradient")
            if tuple(applied.samples) != row.samples:
                raise FerretError(
                    f"stage {stage} updated with samples {list(applied.samples)}, the trace says {list(row.samples)}"
                )
            _check(applied.version, row.version, "updated version")

    def _admit(self, sample: int, worker: int) -> None:
        import torch

        position = self.order[sample]
        x = torch.from_numpy(self.x[position : position + 1]).to(self.device)
        y = torch.from_numpy(self.y[position : position + 1]).to(self.device)
        bottom = self.host.worker.next_bottom(worker)
        self.bottom[sample] = bottom
        self.host.admitted(sample, worker, bottom, x, y, self.task[sample])

    def _wait(self, key: tuple[int, int, int]) -> None:
        host = self.host
        while key not in self.ready:
            got = host.transport.receive()
            assert got is not None
            host.receive(*got)

    def _wait_done(self, sample: int) -> None:
        host = self.host
        while sample not in host.done_arrived:
            got = host.transport.receive()
            assert got is not None
            host.receive(*got)
        host.done_arrived.discard(sample)
        host.datum_done(sample)


def run_lockstep(host: StageHost, setup: RunSetup, rows: Sequence[TraceRow]) -> dict[str, list]:
    """Follow `rows` (execution order); on the source, return the per-datum summary (report.py)."""
    lockstep = Lockstep(host, setup)
    lockstep.run(rows)
    if host.rank != host.source:
        return {}
    n = len(setup.stream)
    bottom = [lockstep.bottom.get(i, -1) for i in range(n)]
    dropped = [False] * n
    removed = [False] * n
    for row in rows:
        if row.kind == "drop":
            dropped[row.sample] = True
            removed[row.sample] = bool(row.bytes)
    return {"bottom": bottom, "dropped": dropped, "removed": removed}


def _check(measured: int, traced: int, what: str) -> None:
    if measured != traced:
        raise FerretError(f"{what} {measured}, the trace says {traced}; is this trace from this plan?")
