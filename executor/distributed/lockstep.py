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
checks it (`executor.pipeline.trace_checks`, which also says how a frozen prefix is tolerated);
a trace of another plan or stream stops the run naming the row. Updates are dated by the trace
(its rows' ends), so delays and adaptation rates are the followed schedule's.

MAS across ranks: a datum's importance pass (passes.py) runs where the replay runs it, at the
datum's last backward row: there every rank runs its stages' share, up then down, waiting for
the stage below's activation and the stage above's gradient as for any row. MIR across ranks:
a datum's scoring passes run at its stage-0 forward row, where the replay scores: every rank
runs its stages' share of the three passes (or only pass 1, which says when there is nothing to
score), and the source then the forward.
"""

from __future__ import annotations

from collections.abc import Sequence

from executor.distributed.host import BWD, FWD, StageHost
from executor.distributed.passes import IMPORTANCE_DOWN, IMPORTANCE_UP, SCORING
from executor.distributed.watchdog import Watchdog
from executor.ocl.setup import RunSetup
from executor.pipeline.trace_checks import TraceChecks
from executor.stage import UpdateResult
from planner.errors import FerretError
from sim.trace import TraceRow


def stale_stages(rows: Sequence[TraceRow]) -> set[int]:
    """Stages the trace ever hands a stale gradient (only they need a compensator)."""
    return {row.stage for row in rows if row.kind == "bwd" and row.staleness > 0}


class Lockstep:
    """The `--follow-trace` driver of one rank: runs the rank's rows of a trace in its global order.

    Reproduces the replay executor's ops bit for bit and checks every version, staleness and update
    against the trace; a mismatch stops the run with a `FerretError` naming the row.
    """

    def __init__(self, host: StageHost, setup: RunSetup, watchdog: Watchdog) -> None:
        self.host = host
        self.watchdog = watchdog
        self.ready: set[tuple[int, int, int]] = set()
        host.on_ready = lambda kind, sample, stage, worker, stores: self.ready.add((kind, sample, stage))
        host.defer_done = True
        host.on_done = self._done
        stream = setup.stream
        device = setup.torch_device
        self.x = stream.dataset.x_train
        self.y = stream.dataset.y_train
        self.order = stream.order.tolist()
        self.task = stream.task.tolist()
        self.device = device
        self.bottom: dict[int, int] = {}
        self.applied: dict[tuple[int, int], UpdateResult] = {}
        self.checks = TraceChecks(host.P)

    def run(self, rows: Sequence[TraceRow]) -> None:
        # MAS across ranks: each datum's importance pass runs at its last backward row.
        ends = {row.sample: index for index, row in enumerate(rows) if row.kind == "bwd"}
        passes = self.host.worker.importance_passes
        for index, row in enumerate(rows):
            try:
                self.step(row)
                if passes and ends.get(row.sample) == index:
                    self._importance(row.sample)
            except FerretError as exc:
                raise FerretError(f"follow-trace, row {index + 1} ({row.kind} of sample {row.sample}): {exc}") from None

    def step(self, row: TraceRow) -> None:
        host = self.host
        host.schedule_time = row.t_end
        kind, sample, worker, stage = row.kind, row.sample, row.worker, row.stage
        if kind in ("fwd", "recompute", "bwd", "update") and not host.owns(stage):
            if kind == "bwd" and host.rank == host.source and self.bottom.get(sample) == stage:
                self._wait_done(sample)
            elif kind == "fwd" and stage == 0 and host.worker.scores_across:
                self._scoring(sample)
            return
        if kind == "fwd":
            if stage == 0:
                self._admit(sample, worker)
                if host.worker.scores_across:
                    self._scoring(sample)
            else:
                self._wait((FWD, sample, stage))
            self.ready.discard((FWD, sample, stage))
            forward = host.forward(sample, stage)
            self.checks.forward(row, forward.version, forward.stored)
        elif kind == "recompute":
            self._wait((BWD, sample, stage))
            self.checks.recompute(row, host.recompute(sample, stage))
        elif kind == "bwd":
            self._wait((BWD, sample, stage))
            self.ready.discard((BWD, sample, stage))
            result = host.backward(sample, stage)
            self.checks.backward(row, result)
            if result.update is not None:
                self.applied[(worker, stage)] = result.update
        elif kind == "update":
            applied = self.applied.pop((worker, stage), None)
            if applied is None:  # a group the trace closes early (the stream ended, a short batch, frozen data)
                applied = host.flush_stage(stage, worker)
            self.checks.update(row, applied)

    def _importance(self, sample: int) -> None:
        """This rank's stages' share of `sample`'s importance pass: up, then down (the last
        stage's up runs its backward too)."""
        stages = sorted(self.host.worker.stages)
        last = self.host.P - 1
        for kind, order in ((IMPORTANCE_UP, stages), (IMPORTANCE_DOWN, [j for j in reversed(stages) if j < last])):
            for stage in order:
                key = (kind, sample, stage)
                self._wait(key, f"the importance pass of sample {sample} at stage {stage}")
                self.ready.discard(key)
                self.host.passes.run(kind, sample, stage)

    def _scoring(self, sample: int) -> None:
        """This rank's stages' share of MIR's scoring passes of `sample` (passes.py); on the source,
        until the scores are back and the datum's first forward is ready."""
        host = self.host
        stages = sorted(host.worker.stages)
        last = host.P - 1
        passes = ((1, stages), (2, [j for j in reversed(stages) if j < last]), (3, stages))
        for step, order in passes:
            for stage in order:
                key = (SCORING[step - 1], sample, stage)
                self._wait(key, f"scoring pass {step} of sample {sample} at stage {stage}")
                self.ready.discard(key)
                host.passes.run(key[0], sample, stage)
            if step == 1 and sample in host.passes.skipped:  # nothing to score
                host.passes.skipped.discard(sample)
                break
        if host.rank == host.source:
            self._wait((FWD, sample, 0), f"the scores of sample {sample}'s replay candidates")

    def _done(self, sample: int, worker: int, trained: int) -> None:
        self.bottom[sample] = trained  # a frozen prefix stops above the datum's bottom

    def _admit(self, sample: int, worker: int) -> None:
        import torch

        position = self.order[sample]
        x = torch.from_numpy(self.x[position : position + 1]).to(self.device)
        y = torch.from_numpy(self.y[position : position + 1]).to(self.device)
        bottom = self.host.worker.next_bottom(worker)
        self.bottom[sample] = bottom
        self.host.admitted(sample, worker, bottom, x, y, self.task[sample])

    def _wait(self, key: tuple[int, int, int], what: str = "") -> None:
        kind, sample, stage = key
        what = what or f"the {'gradient' if kind == BWD else 'activation'} of sample {sample} for stage {stage}"
        with self.watchdog.waiting(what):
            while key not in self.ready:
                self._take()

    def _wait_done(self, sample: int) -> None:
        host = self.host
        with self.watchdog.waiting(f"the DONE of sample {sample}"):
            while sample not in host.done_arrived:
                self._take()
        host.datum_done(sample, *host.done_arrived.pop(sample))

    def _take(self) -> None:
        got = self.host.transport.receive()
        assert got is not None
        self.host.receive(*got)


def run_lockstep(
    host: StageHost, setup: RunSetup, rows: Sequence[TraceRow], watchdog: Watchdog
) -> tuple[dict[str, list], dict[int, int]]:
    """Follow `rows` (execution order). Returns, on the source, the per-datum summary
    (report.py), and per owned stage the update rows that applied nothing (a frozen prefix)."""
    lockstep = Lockstep(host, setup, watchdog)
    lockstep.run(rows)
    skipped = {j: lockstep.checks.skipped[j] for j in host.worker.stages}
    if host.rank != host.source:
        return {}, skipped
    n = len(setup.stream)
    bottom = [lockstep.bottom.get(i, -1) for i in range(n)]
    dropped = [False] * n
    removed = [False] * n
    for row in rows:
        if row.kind == "drop":
            dropped[row.sample] = True
            removed[row.sample] = bool(row.bytes)
    return {"bottom": bottom, "dropped": dropped, "removed": removed}, skipped
