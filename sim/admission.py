"""How arrivals enter the pipeline: per-datum admission into async workers, or mini-batches.

Datum `i` belongs to the worker whose offset is `i mod N` (SPEC §3.1); with no such worker
(removed, T4) it is dropped. Async workers admit a datum while they hold fewer than `P`; else
it waits in the worker's bounded buffer, or is dropped. Batched strategies gather a mini-batch
(`plan.minibatch`) in the buffer, run it, and start the next one only after the flush. When
the stream ends, async workers apply their open gradient groups once they drain, and batched
ones run whatever is left waiting as a last, smaller batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator
from typing import Any, Protocol

import numpy as np
import simpy
from simpy.events import Event, EventPriority

from planner.omission import backward_every
from planner.plan import WorkerConfig
from sim.strategies import SimStrategy
from sim.trace import TraceSink

ARRIVAL_PRIORITY = EventPriority(2)  # after SimPy's NORMAL: at equal times, ops complete before data arrive


class Worker:
    __slots__ = (
        "backward_every",
        "batch",
        "bound",
        "buffer",
        "config",
        "count",
        "index",
        "inflight",
        "slots",
        "window",
    )

    def __init__(self, index: int, config: WorkerConfig, bound: int, window: int) -> None:
        self.index = index
        self.config = config
        self.slots: list[Any] = []
        self.inflight = 0  # admitted, not yet done
        self.window = window  # most data in flight (async 1F1B: P)
        self.buffer: deque[int] = deque()  # data waiting to be admitted
        self.bound = bound  # most data waiting
        self.count = 0  # data admitted so far: the next datum's index within the worker
        self.backward_every = backward_every(config.omission)  # SPEC §3.2 omission, per stage
        self.batch: Batch | None = None


class Batch:
    __slots__ = ("done", "parked", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.done = 0
        self.parked: list[Any] = []  # GPipe: samples whose backward waits for the whole batch's forward


class EngineOps(Protocol):
    stream_over: bool
    rng: np.random.Generator
    workers: list[Worker]

    def new_datum(self, sample: int, worker: Worker, batch: Batch | None = None) -> Any: ...

    def start_datum(self, datum: Any) -> None: ...

    def drop(self, sample: int, worker: Worker | None, t: float, removed: bool = False) -> None: ...

    def apply_update(self, slot: Any, t_start: float, now: float) -> None: ...

    def step_rows(self, slot: Any, rows: int) -> None: ...


class Admission:
    def __init__(self, engine: EngineOps, strategy: SimStrategy, minibatch: int, num_stages: int) -> None:
        self.engine = engine
        self.strategy = strategy
        self.minibatch = minibatch
        self.P = num_stages

    def stream(
        self, env: simpy.Environment, times: np.ndarray, trace: TraceSink, by_offset: dict[int, Worker]
    ) -> Generator[Event, None, None]:
        """The SimPy process of the stream: each datum arrives, is routed, admitted or dropped."""
        emit = trace.rows.append
        num_workers = len(self.engine.workers)
        for i, t in enumerate(_chunked(times)):
            delay = t - env.now
            if delay > 0:
                wake = Event(env)
                wake._ok = True
                wake._value = None
                env.schedule(wake, ARRIVAL_PRIORITY, delay)
                yield wake
            worker = by_offset.get(i % num_workers)
            emit(("arrive", i, -1 if worker is None else worker.index, -1, -1, t, t, -1, 0, 0))
            if worker is None:
                self.engine.drop(i, None, t, removed=True)
            else:
                self.arrive(worker, i, t)
            if len(trace.rows) >= trace.chunk_rows:
                trace.flush()
        self.engine.stream_over = True
        for worker in self.engine.workers:
            self.stream_end(worker, env.now)

    # ------------------------------------------------------------------ arrivals
    def arrive(self, worker: Worker, sample: int, t: float) -> None:
        if self.strategy.batched:
            if worker.batch is None and len(worker.buffer) + 1 >= self._batch_need():
                worker.buffer.append(sample)
                self._start_batch(worker)
                return
        elif worker.inflight < worker.window and not worker.buffer:
            self.engine.start_datum(self.engine.new_datum(sample, worker))
            return
        self._wait_or_drop(worker, sample, t)

    def _wait_or_drop(self, worker: Worker, sample: int, t: float) -> None:
        if len(worker.buffer) < worker.bound:
            worker.buffer.append(sample)
        elif self.strategy.drop == "oldest" and worker.bound > 0:
            self.engine.drop(worker.buffer.popleft(), worker, t)
            worker.buffer.append(sample)
        else:
            self.engine.drop(sample, worker, t)

    def _batch_need(self) -> int:
        return self.minibatch if self.strategy.full_batch else 1

    # ------------------------------------------------------------------ completion
    def datum_done(self, datum: Any, now: float) -> None:
        worker: Worker = datum.worker
        worker.inflight -= 1
        if self.strategy.batched:
            batch = datum.batch
            batch.done += 1
            if batch.done == batch.size:
                worker.batch = None
                self._start_batch(worker)
        else:
            while worker.buffer and worker.inflight < worker.window:
                self.engine.start_datum(self.engine.new_datum(worker.buffer.popleft(), worker))
            if self.engine.stream_over and worker.inflight == 0 and not worker.buffer:
                self._flush_groups(worker, now)

    def stream_end(self, worker: Worker, now: float) -> None:
        if self.strategy.batched:
            self._start_batch(worker)
        elif worker.inflight == 0 and not worker.buffer:
            self._flush_groups(worker, now)

    def _flush_groups(self, worker: Worker, now: float) -> None:
        """The stream is over and the worker is empty: apply every open gradient group."""
        for slot in worker.slots:
            if slot.acc:
                self.engine.apply_update(slot, now, now)

    # ------------------------------------------------------------------ mini-batches
    def _start_batch(self, worker: Worker) -> None:
        if worker.batch is not None or not worker.buffer:
            return
        queue = worker.buffer
        if len(queue) < self._batch_need() and not self.engine.stream_over:
            return
        take = min(self.minibatch, len(queue))
        select = self.strategy.select
        if select == "oldest":
            chosen = [queue.popleft() for _ in range(take)]
        elif select == "newest":
            chosen = [queue.pop() for _ in range(take)][::-1]
        else:
            picks = set(self.engine.rng.choice(len(queue), size=take, replace=False).tolist())
            chosen = [s for i, s in enumerate(queue) if i in picks]
            worker.buffer = deque(s for i, s in enumerate(queue) if i not in picks)
        batch = Batch(take)
        worker.batch = batch
        data = [self.engine.new_datum(s, worker, batch) for s in chosen]
        for j, slot in enumerate(worker.slots):
            slot.acc_target = sum(1 for d in data if d.bottom <= j)
            slot.window = take if self.strategy.batch_window else self.P - j
            if self.strategy.single_device:  # one training step on `take` rows, run row by row
                self.engine.step_rows(slot, take)
        for d in data:
            self.engine.start_datum(d)


def _chunked(values: np.ndarray, size: int = 4096) -> Iterator[float]:
    """The values as Python floats, converted a chunk at a time (no stream-long list)."""
    for start in range(0, len(values), size):
        yield from values[start : start + size].tolist()
