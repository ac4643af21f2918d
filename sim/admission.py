"""How data enter the pipeline; every decision is `sim.policy`'s, the clock is the engine's.

The engine routes each arriving datum to its worker (or drops it: removed worker, T4) and calls
`arrive`; `Admission` asks the `AdmissionPolicy` whether it starts, waits or is dropped, and
when a datum or a mini-batch completes, what to admit next. Window learners (Last-N, Random-N)
choose their batch at the end of the instant, after its arrivals, as the policy says. When the
stream ends, async workers apply their open gradient groups once they drain, and batched ones
run whatever is left waiting as a last, smaller batch.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import numpy as np

from planner.omission import backward_every
from planner.plan import WorkerConfig
from sim.policy import AdmissionPolicy, Arrival


class Worker:
    """One worker's admission state: data in flight, data waiting, its running batch."""

    __slots__ = ("backward_every", "batch", "buffer", "choosing", "config", "count", "index", "inflight", "slots")

    def __init__(self, index: int, config: WorkerConfig) -> None:
        self.index = index
        self.config = config
        self.slots: list[Any] = []
        self.inflight = 0  # admitted, not yet done
        self.buffer: deque[int] = deque()  # data waiting to be admitted
        self.choosing = False  # a sequential learner will choose its batch at the end of this instant
        self.count = 0  # data admitted so far: the next datum's index within the worker
        self.backward_every = backward_every(config.omission)  # SPEC §3.2 omission, per stage
        self.batch: Batch | None = None


class Batch:
    """A mini-batch of a batched worker: its size, the data done, GPipe's parked forwards."""

    __slots__ = ("done", "parked", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.done = 0
        self.parked: list[Any] = []  # GPipe: samples whose backward waits for the whole batch's forward


class EngineOps(Protocol):
    """What admission asks of the engine."""

    stream_over: bool
    rng: np.random.Generator
    workers: list[Worker]

    def new_datum(self, sample: int, worker: Worker, batch: Batch | None = None) -> Any: ...

    def start_datum(self, datum: Any) -> None: ...

    def drop(self, sample: int, worker: Worker | None, t: float, removed: bool = False) -> None: ...

    def apply_update(self, slot: Any, t_start: float, now: float) -> None: ...

    def step_rows(self, slot: Any, rows: int) -> None: ...

    def after_arrivals(self, callback: Any, worker: Worker) -> None: ...

    def unpark(self, slot: Any) -> None: ...


class Admission:
    """Routes each arrival through the `AdmissionPolicy` and starts, queues or drops it."""

    def __init__(self, engine: EngineOps, policy: AdmissionPolicy, single_device: bool) -> None:
        self.engine = engine
        self.policy = policy
        self.single_device = single_device  # a sequential learner: its step's cost depends on its rows

    # ------------------------------------------------------------------ arrivals
    def arrive(self, worker: Worker, sample: int, t: float) -> None:
        policy = self.policy
        decision = policy.on_arrival(worker.inflight, len(worker.buffer), worker.batch is not None)
        if decision is Arrival.START:
            if policy.batched:
                worker.buffer.append(sample)
                self._start_batch(worker)
            else:
                self.engine.start_datum(self.engine.new_datum(sample, worker))
            return
        if decision is Arrival.DROP:
            self.engine.drop(sample, worker, t)
            return
        if decision is Arrival.EVICT:
            self.engine.drop(worker.buffer.popleft(), worker, t)
        worker.buffer.append(sample)
        if policy.select_later:
            self._choose_later(worker)

    # ------------------------------------------------------------------ completion
    def datum_done(self, datum: Any, now: float) -> None:
        worker: Worker = datum.worker
        worker.inflight -= 1
        if self.policy.batched:
            batch = datum.batch
            batch.done += 1
            if batch.done == batch.size:
                worker.batch = None
                self._next_batch(worker)
        else:
            for _ in range(self.policy.admit_after_done(worker.inflight, len(worker.buffer))):
                self.engine.start_datum(self.engine.new_datum(worker.buffer.popleft(), worker))
            if self.engine.stream_over and worker.inflight == 0 and not worker.buffer:
                self._flush_groups(worker, now)

    def stream_end(self, worker: Worker, now: float) -> None:
        if self.policy.batched:
            self._next_batch(worker)
        elif worker.inflight == 0 and not worker.buffer:
            self._flush_groups(worker, now)

    def _flush_groups(self, worker: Worker, now: float) -> None:
        """The stream is over and the worker is empty: apply every open gradient group."""
        for slot in worker.slots:
            if slot.acc:
                self.engine.apply_update(slot, now, now)

    # ------------------------------------------------------------------ mini-batches
    def _next_batch(self, worker: Worker) -> None:
        if self.policy.select_later:
            self._choose_later(worker)
        else:
            self._start_batch(worker)

    def _choose_later(self, worker: Worker) -> None:
        if worker.batch is None and not worker.choosing and worker.buffer:
            worker.choosing = True
            self.engine.after_arrivals(self._chosen, worker)

    def _chosen(self, worker: Worker) -> None:
        worker.choosing = False
        self._start_batch(worker)

    def _start_batch(self, worker: Worker) -> None:
        if worker.batch is not None:
            return
        policy = self.policy
        take = policy.batch_size(len(worker.buffer), self.engine.stream_over)
        if not take:
            return
        chosen, rest = policy.choose(list(worker.buffer), take, self.engine.rng)
        worker.buffer = deque(rest)
        batch = Batch(take)
        worker.batch = batch
        data = [self.engine.new_datum(s, worker, batch) for s in chosen]
        for j, slot in enumerate(worker.slots):
            slot.acc_target = sum(1 for d in data if d.bottom <= j)
            slot.window = policy.stage_window(j, take)
            self.engine.unpark(slot)
            if self.single_device:  # one training step on `take` rows, run row by row
                self.engine.step_rows(slot, take)
        for d in data:
            self.engine.start_datum(d)
