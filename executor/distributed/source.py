"""The stream source (stage 0's owner): arrivals on the wall clock, admission, drops, the end.

Datum `i` arrives at `t0 + arrival_s[i]` — the stream's own arrival times, drawn by the run's
`ArrivalProcess` with the run's seed, exactly what the twin is given. It belongs to the worker
whose offset is `i mod N` (SPEC §3.1; none: a removed worker, the datum is dropped). An async
worker admits it while it holds fewer than `P` data and nobody waits before it; otherwise it
waits in the worker's buffer (`SimStrategy.buffer_bound`, the twin's `input_buffer`), and a
full buffer drops the arriving datum or the oldest waiting one (the strategy's `drop`) — the
twin's rules, so its drop predictions are about the same thing.

The decisions are the twin's own: `sim.policy.AdmissionPolicy` and `route`. A synchronous
strategy (GPipe, 1F1B-flush) is driven as `sim.admission` drives it: an arrival that completes
a mini-batch while the worker runs none starts one (`batch_size`, `choose`: its data are
admitted at once, and every stage owner told, batches.py); the next starts when the batch's
last datum is done, and once the stream is over what waits forms a last, shorter batch.

A datum that no worker trains on is not predicted, unless `predict_all`: then an
inference-only forward runs through the stages on their current weights.

When the stream is over and a worker holds nothing, its open gradient groups are applied at
every stage (`FLUSH`); when every worker is flushed and every inference answered, `STOP`.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from executor.distributed import protocol
from executor.distributed.batches import BatchBook
from executor.distributed.host import StageHost
from executor.distributed.trace import RankRecorder
from executor.ocl.setup import RunSetup
from planner.plan import Plan
from sim.policy import AdmissionPolicy, Arrival, route

NOT_ADMITTED = -1


class StreamSource:
    """The stream's source on stage 0's owner: releases arrivals on the wall clock, admits or drops them.

    Uses the twin's `AdmissionPolicy` and `route`, keeps each admitted datum until its `DONE`, and sends
    `FLUSH` then `STOP` when the stream is over; see the module docstring.
    """

    def __init__(
        self,
        setup: RunSetup,
        plan: Plan,
        policy: AdmissionPolicy,
        host: StageHost,
        recorder: RankRecorder,
        predict_all: bool = False,
        book: BatchBook | None = None,
    ) -> None:
        self.plan = plan
        self.host = host
        self.recorder = recorder
        self.predict_all = predict_all
        self.policy = policy
        self.book = book  # batched strategies: the batches' side on this rank's stages
        # Which waiting data form a batch: GPipe and 1F1B-flush take the oldest (no draw).
        self.rng = np.random.default_rng(setup.seed)
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
        self.inflight = [0] * N  # batched: the running batch's data not yet done
        self.batches = [0] * N  # batches started per worker
        self.waiting: list[deque[int]] = [deque() for _ in range(N)]
        self.flushed = [not plan.workers[n].active for n in range(N)]
        self._arrival = self.arrival_s.tolist()  # Python floats: the loop compares them every turn
        self.next = 0
        self.infers = 0
        self._pause_at: int | None = None
        # The run time at which `release` has something to do (the loop's one comparison per
        # turn): the next arrival; −inf once the stream is over and the end is still to be
        # seen (the flushes); inf while paused, and after the end.
        self.due_s = self._arrival[0] if self.n else -math.inf
        # Per datum: worker (-1: removed), whether dropped, and the wall time it was released.
        # Python lists: an arrival writes several of them (a numpy item write costs far more).
        self.worker_of = [-1] * self.n
        self.dropped = [False] * self.n
        self.removed = [False] * self.n
        self.released_s = [math.nan] * self.n
        self.bottom = [NOT_ADMITTED] * self.n
        host.on_done = self.datum_done
        host.on_predicted = self.predicted

    def summary(self) -> dict[str, list]:
        """Per datum, what rank 0 needs to merge the run (report.py); and what waits for a
        mini-batch (a checkpoint keeps it)."""
        return {
            "bottom": list(self.bottom),
            "dropped": list(self.dropped),
            "removed": list(self.removed),
            "worker": list(self.worker_of),
            "released_s": list(self.released_s),
            "waiting": [list(waiting) for waiting in self.waiting],
        }

    def restore(self, summary: dict[str, list], position: int) -> None:
        """Resume at datum `position` with the records of the data before it (checkpoint.py)."""
        self.next = position
        self._due()
        self.bottom[:] = [int(v) for v in summary["bottom"]]
        self.dropped[:] = [bool(v) for v in summary["dropped"]]
        self.removed[:] = [bool(v) for v in summary["removed"]]
        self.worker_of[:] = [int(v) for v in summary["worker"]]
        self.released_s[:] = [float(v) for v in summary["released_s"]]
        # (An asynchronous worker's queue is empty at a checkpoint: absent from older ones.)
        self.waiting = [deque(int(s) for s in w) for w in summary.get("waiting", [[] for _ in range(self.N)])]

    # ------------------------------------------------------------------ the clock
    @property
    def stream_over(self) -> bool:
        return self.next >= self.n

    @property
    def paused(self) -> bool:
        return self.next == self._pause_at

    @property
    def pause_at(self) -> int | None:
        """A checkpoint's position: release nothing from this datum on, for now (None: no pause)."""
        return self._pause_at

    @pause_at.setter
    def pause_at(self, position: int | None) -> None:
        self._pause_at = position
        self._due()

    def _due(self) -> None:
        if self.stream_over:
            self.due_s = -math.inf  # release once more: the end flushes the idle workers
        elif self.paused:
            self.due_s = math.inf
        else:
            self.due_s = self._arrival[self.next]

    @property
    def quiescent(self) -> bool:
        """Nothing admitted is unfinished (a checkpoint can be taken). An asynchronous worker
        that holds nothing has admitted all that waited; a batched one may have data waiting for
        a mini-batch, which the checkpoint keeps (`summary`), so it is taken between batches."""
        return not any(self.inflight) and not self.infers

    def due_in(self, now: float) -> float | None:
        """Seconds until the next arrival (0: due now; None: none is coming, or the source is paused).
        (The loop asks after `release`, so `due_s` is then the next arrival, or inf.)"""
        due = self.due_s
        return None if due == math.inf else max(0.0, due - now)

    def release(self, now: float) -> None:
        """Every datum whose arrival time has come by run time `now`, in order (the loop calls
        it once `now` reaches `due_s`)."""
        arrival = self._arrival
        n, pause = self.n, self._pause_at
        i = self.next
        while i < n and arrival[i] <= now and i != pause:
            self.next = i + 1
            self.released_s[i] = now
            self.arrive(i, arrival[i])
            i += 1
        if i >= n:
            for worker in range(self.N):
                if self.policy.batched:
                    self._start_batch(worker)  # what waits is the last batch
                self._maybe_flush(worker)
            self.due_s = math.inf  # from now on a worker's last `DONE` flushes it (datum_done)
        else:
            self.due_s = math.inf if i == pause else arrival[i]  # `_due`, inline

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
        inflight = self.inflight[worker]
        decision = self.policy.on_arrival(inflight, len(waiting), inflight > 0)  # busy: a batch runs
        if decision == Arrival.START:
            if self.policy.batched:
                waiting.append(i)
                self._start_batch(worker)
            else:
                self._admit(i, worker)
        elif decision == Arrival.DROP:
            self._drop(i, worker, t)
        else:
            if decision == Arrival.EVICT:
                self._drop(waiting.popleft(), worker, t)
            waiting.append(i)

    def _start_batch(self, worker: int) -> None:
        """`sim.admission`'s `_start_batch`: a free worker starts the batch the policy forms."""
        assert self.book is not None, "a batched strategy's source needs its rank's BatchBook"
        if self.inflight[worker]:
            return
        take = self.policy.batch_size(len(self.waiting[worker]), self.stream_over)
        if not take:
            return
        chosen, rest = self.policy.choose(list(self.waiting[worker]), take, self.rng)
        self.waiting[worker] = deque(rest)
        for i in chosen:  # queued, not run: every owner hears of the batch before any op of it
            self._admit(i, worker)
        bottoms = [self.bottom[i] for i in chosen]
        backwards = [sum(1 for b in bottoms if b <= j) for j in range(self.plan.num_stages)]
        self.book.open(worker, self.batches[worker], take, backwards)
        self.batches[worker] += 1

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
        if self.policy.batched:
            self._start_batch(worker)  # starts only once the batch's last datum is done
        else:
            for _ in range(self.policy.admit_after_done(self.inflight[worker], len(waiting))):
                self._admit(waiting.popleft(), worker)
        self._maybe_flush(worker)

    def predicted(self, sample: int, label: int) -> None:
        self.host.predicted[sample] = label
        self.infers -= 1
        self._maybe_stop()

    def _maybe_flush(self, worker: int) -> None:
        if self.flushed[worker] or self.next < self.n or self.inflight[worker] or self.waiting[worker]:
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
