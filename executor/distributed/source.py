"""The stream source (stage 0's owner): arrivals on the wall clock, admission, drops, the end.

Datum `i` arrives at `t0 + arrival_s[i]` — the stream's own arrival times, drawn by the run's
`ArrivalProcess` with the run's seed, exactly what the twin is given. It belongs to the worker
whose offset is `i mod N` (SPEC §3.1; none: a removed worker, the datum is dropped). An async
worker admits it while it holds fewer than `P` data and nobody waits before it; otherwise it
waits in the worker's buffer (`SimStrategy.buffer_bound`, the twin's `input_buffer`), and a
full buffer drops the arriving datum or the oldest waiting one (the strategy's `drop`) — the
twin's rules, so its drop predictions are about the same thing.

The decisions are the twin's own: `sim.policy.AdmissionPolicy` and `route`.

A datum that no worker trains on is not predicted, unless `predict_all`: then an
inference-only forward runs through the stages on their current weights.

When the stream is over and a worker holds nothing, its open gradient groups are applied at
every stage (`FLUSH`); when every worker is flushed and every inference answered, `STOP`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from executor.distributed import protocol
from executor.distributed.host import StageHost
from executor.distributed.trace import RankRecorder
from executor.ocl.setup import RunSetup
from planner.plan import Plan
from sim.policy import AdmissionPolicy, Arrival, route

NOT_ADMITTED = -1


class StreamSource:
    def __init__(
        self,
        setup: RunSetup,
        plan: Plan,
        policy: AdmissionPolicy,
        host: StageHost,
        recorder: RankRecorder,
        predict_all: bool = False,
    ) -> None:
        self.plan = plan
        self.host = host
        self.recorder = recorder
        self.predict_all = predict_all
        self.policy = policy
        stream = setup.stream
        device = setup.torch_device
        self.arrival_s = np.asarray(stream.arrival_s, dtype=np.float64)
        self.n = len(self.arrival_s)
        self.x = torch.from_numpy(stream.dataset.x_train).to(device)
        self.y = torch.from_numpy(stream.dataset.y_train).to(device)
        self.order = stream.order.tolist()
        self.task = stream.task.tolist()
        N = plan.num_workers
        self.N = N
        self.by_offset = {w.offset: n for n, w in enumerate(plan.workers) if w.active}
        self.inflight = [0] * N
        self.waiting: list[deque[int]] = [deque() for _ in range(N)]
        self.flushed = [not plan.workers[n].active for n in range(N)]
        self.next = 0
        self.infers = 0
        self.pause_at: int | None = None  # a checkpoint: release nothing from this datum on, for now
        # Per datum: worker (-1: removed), whether dropped, and the wall time it was released.
        self.worker_of = np.full(self.n, -1, dtype=np.int64)
        self.dropped = np.zeros(self.n, dtype=bool)
        self.removed = np.zeros(self.n, dtype=bool)
        self.released_s = np.full(self.n, np.nan)
        self.bottom = np.full(self.n, NOT_ADMITTED, dtype=np.int64)
        host.on_done = self.datum_done
        host.on_predicted = self.predicted

    def summary(self) -> dict[str, list]:
        """Per datum, what rank 0 needs to merge the run (report.py)."""
        return {
            "bottom": self.bottom.tolist(),
            "dropped": self.dropped.tolist(),
            "removed": self.removed.tolist(),
            "worker": self.worker_of.tolist(),
            "released_s": self.released_s.tolist(),
        }

    def restore(self, summary: dict[str, list], position: int) -> None:
        """Resume at datum `position` with the records of the data before it (checkpoint.py)."""
        self.next = position
        self.bottom[:] = summary["bottom"]
        self.dropped[:] = summary["dropped"]
        self.removed[:] = summary["removed"]
        self.worker_of[:] = summary["worker"]
        self.released_s[:] = summary["released_s"]

    # ------------------------------------------------------------------ the clock
    @property
    def stream_over(self) -> bool:
        return self.next >= self.n

    @property
    def paused(self) -> bool:
        return self.next == self.pause_at

    @property
    def quiescent(self) -> bool:
        """Nothing admitted is unfinished and nothing waits (a checkpoint can be taken)."""
        return not any(self.inflight) and not any(self.waiting) and not self.infers

    def due_in(self, now: float) -> float | None:
        """Seconds until the next arrival (0: due now; None: none is coming, or the source is paused)."""
        if self.stream_over or self.paused:
            return None
        return max(0.0, float(self.arrival_s[self.next]) - now)

    def release(self, now: float) -> None:
        """Every datum whose arrival time has come by run time `now`, in order."""
        arrival = self.arrival_s
        while self.next < self.n and arrival[self.next] <= now and not self.paused:
            i = self.next
            self.next += 1
            self.released_s[i] = now
            self.arrive(i, float(arrival[i]))
        if self.stream_over:
            for worker in range(self.N):
                self._maybe_flush(worker)

    # ------------------------------------------------------------------ admission
    def arrive(self, i: int, t: float) -> None:
        worker = route(i, self.by_offset, self.N)
        self.recorder.instant("arrive", i, -1 if worker is None else worker, t)
        if worker is None:
            self.removed[i] = True
            self._drop(i, -1, t, removed=True)
            return
        self.worker_of[i] = worker
        waiting = self.waiting[worker]
        decision = self.policy.on_arrival(self.inflight[worker], len(waiting), False)
        if decision == Arrival.START:
            self._admit(i, worker)
        elif decision == Arrival.DROP:
            self._drop(i, worker, t)
        else:
            if decision == Arrival.EVICT:
                self._drop(waiting.popleft(), worker, t)
            waiting.append(i)

    def _admit(self, i: int, worker: int) -> None:
        position = self.order[i]
        x, y = self.x[position : position + 1], self.y[position : position + 1]
        bottom = self.host.worker.next_bottom(worker)
        self.bottom[i] = bottom
        self.inflight[worker] += 1
        self.host.admitted(i, worker, bottom, x, y, self.task[i])

    def _drop(self, i: int, worker: int, t: float, removed: bool = False) -> None:
        self.dropped[i] = True
        self.recorder.instant("drop", i, worker, t, int(removed))
        if self.predict_all:
            position = self.order[i]
            self.infers += 1
            self.host.predict_only(i, self.x[position : position + 1])

    # ------------------------------------------------------------------ completion
    def datum_done(self, sample: int, worker: int, trained: int) -> None:
        self.bottom[sample] = trained  # the lowest stage it trained: above its bottom after a frozen prefix
        self.inflight[worker] -= 1
        waiting = self.waiting[worker]
        for _ in range(self.policy.admit_after_done(self.inflight[worker], len(waiting))):
            self._admit(waiting.popleft(), worker)
        self._maybe_flush(worker)

    def predicted(self, sample: int, label: int) -> None:
        self.host.predicted[sample] = label
        self.infers -= 1
        self._maybe_stop()

    def _maybe_flush(self, worker: int) -> None:
        if self.flushed[worker] or not self.stream_over or self.inflight[worker] or self.waiting[worker]:
            return
        self.flushed[worker] = True
        for rank in sorted(set(self.host.owners)):
            if rank == self.host.rank:
                self.host.flush(worker)
            else:
                self.host.transport.send(rank, protocol.flush(worker))
        self._maybe_stop()

    def _maybe_stop(self) -> None:
        if self.host.stopped or not all(self.flushed) or self.infers or not self.stream_over:
            return
        for rank in range(self.host.transport.world_size):
            if rank != self.host.rank:
                self.host.transport.send(rank, protocol.STOP)
        self.host.stopped = True
