"""The one admission and dispatch policy of a pipeline: pure decisions, no clock, no queues.

The twin's engine calls exactly these functions, and a real-time executor's per-rank scheduler
calls them too, so the two cannot drift apart. Nothing here imports SimPy or torch, holds a
datum or reads a clock: the caller keeps its own queues and counters and asks.

**Admission** (`AdmissionPolicy`, one per run, from the strategy and plan: `admission_policy`).
Datum `i` belongs to the worker whose offset is `i mod N` (SPEC §3.1); a removed worker's data
are dropped (`route`). Then, per worker:

* `on_arrival(in_flight, waiting, busy)` → `Arrival.START` (admit it now — or, batched: it
  completes a mini-batch, start one now), `WAIT` (append it to the worker's waiting queue),
  `EVICT` (drop the *oldest* waiting datum, then append this one: fresher data are worth more)
  or `DROP` (drop *this* datum). Async workers (Ferret, PipeDream, 2BW) admit while they hold
  fewer than `window = P` data and none waits; batched ones (GPipe, 1F1B-flush) start a batch
  when a full one waits and none runs; 1-Skip starts on an arrival to a free learner; the
  window learners (Last-N, Random-N) never start on an arrival: they `select_later`.
* `admit_after_done(in_flight, waiting)` — an async worker finished a datum: how many of the
  oldest waiting data to admit now.
* `batch_size(waiting, stream_over)` — a batched worker is free: how many waiting data form the
  next batch (0: wait). `choose(waiting, take, rng)` picks them (oldest, newest or random).
* `select_later`: True for the learners that keep a window of the latest data (Last-N,
  Random-N): they pick their next batch only after every arrival of the current instant (the
  sequential executor's rule: arrivals at the moment a step ends, or together, join the window
  before the learner chooses). A caller with such a policy defers the choice to the end of the
  instant — after its arrivals — whenever the learner is free. 1-Skip needs no deferral: the
  first arrival to a free learner is the one it trains on.
* `stage_window(stage, batch)`: the most data stage `stage` of a worker may store at once
  (1F1B: `P - j`; GPipe and the sequential learners: the whole batch).

**Dispatch** (per device): among a device's ready ops, a ready backward goes before a ready
forward, then the older datum (lower sample index), then the op that became ready first
(`ReadyOps` keeps them in that order); a slot (worker, stage) runs one op at a time, and a
forward that would store its datum waits while the slot's window is full (`may_start`).

A per-rank scheduler of a distributed executor uses it like the twin does::

    policy = admission_policy(strategy, plan, bound)      # on the rank that receives the stream
    worker = route(sample, offsets)                      # None: dropped (removed worker)
    match policy.on_arrival(in_flight[w], len(waiting[w]), busy[w]): ...
    ready = ReadyOps()                                   # one per device the rank drives
    ready.push(BWD, sample, op)                          # when an op's input arrives
    op = ready.next_startable(lambda kind, op: may_start(kind, slot_busy(op), stores(op),
                                                         outstanding(op), window(op)))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from heapq import heappop, heappush
from typing import Any, Final

import numpy as np

from planner.plan import Plan
from sim.strategies import SimStrategy

# Op kinds, in dispatch priority order: a ready backward goes first. (`Final`, here and in the
# other compiled modules: a constant in compiled code, not a look-up in the module's namespace.)
BWD: Final = 0
FWD: Final = 1


class Arrival(IntEnum):
    """What `AdmissionPolicy.on_arrival` decides for one arriving datum.

    START: admit it now (batched: start the mini-batch it completes); WAIT: it joins the worker's
    waiting queue; EVICT: drop the oldest waiting datum, then queue it; DROP: drop the arriving datum.
    """

    START = 0  # admit it now; batched: it completes a mini-batch, start one now
    WAIT = 1  # it joins the worker's waiting queue
    EVICT = 2  # drop the oldest waiting datum, then it joins the queue
    DROP = 3  # drop the arriving datum


@dataclass(frozen=True)
class AdmissionPolicy:
    """One run's admission decisions (see the module docstring), shared by the twin and executors.

    Pure and frozen: callers pass their counters and keep their own queues. Built from a `SimStrategy`
    and a plan by `admission_policy`; `bound` is the most data waiting per worker.
    """

    batched: bool  # mini-batches with a flush (GPipe, 1F1B-flush, sequential learners)
    window: int  # async: most data a worker holds (P)
    bound: int  # most data waiting in front of a worker
    drop_oldest: bool  # a full queue evicts its oldest datum (else the arriving one is dropped)
    minibatch: int
    full_batch: bool  # wait for a full mini-batch (GPipe, 1F1B) or take what waits (learners)
    select: str  # which waiting data form a batch: oldest | newest | random
    batch_window: bool  # a stage may store the whole batch (GPipe, learners) instead of P - j
    num_stages: int
    select_later: bool  # a window learner picks its batch after every arrival of the instant

    def on_arrival(self, in_flight: int, waiting: int, busy: bool) -> Arrival:
        """A datum arrives to a worker holding `in_flight` admitted data with `waiting` queued;
        `busy`: a batched worker runs a batch (or a sequential learner has chosen to)."""
        if self.batched:
            need = self.minibatch if self.full_batch else 1
            if not busy and not self.select_later and waiting + 1 >= need:
                return Arrival.START
            # A free window learner keeps the instant's latest arrival to choose, even with no room.
            room = max(self.bound, 1) if self.select_later and not busy else self.bound
        else:
            if in_flight < self.window and not waiting:
                return Arrival.START
            room = self.bound
        if waiting < room:
            return Arrival.WAIT
        return Arrival.EVICT if self.drop_oldest and room > 0 else Arrival.DROP

    def admit_after_done(self, in_flight: int, waiting: int) -> int:
        """Async: a datum finished; admit this many of the oldest waiting data now."""
        return max(0, min(waiting, self.window - in_flight))

    def batch_size(self, waiting: int, stream_over: bool) -> int:
        """Batched and free: the size of the batch to start now (0: keep waiting)."""
        need = self.minibatch if self.full_batch else 1
        if not waiting or (waiting < need and not stream_over):
            return 0
        return min(self.minibatch, waiting)

    def choose(self, waiting: Sequence[int], take: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """(the `take` data that form the batch, in arrival order; those still waiting)."""
        if self.select == "oldest":
            return list(waiting[:take]), list(waiting[take:])
        if self.select == "newest":
            cut = len(waiting) - take
            return list(waiting[cut:]), list(waiting[:cut])
        picks = set(rng.choice(len(waiting), size=take, replace=False).tolist())
        return [s for i, s in enumerate(waiting) if i in picks], [s for i, s in enumerate(waiting) if i not in picks]

    def stage_window(self, stage: int, batch: int) -> int:
        """The most data `stage` stores at once: 1F1B `P - j`; GPipe and learners the batch."""
        return batch if self.batched and self.batch_window else self.num_stages - stage


def admission_policy(strategy: SimStrategy, plan: Plan, bound: int) -> AdmissionPolicy:
    """The policy of `strategy` running `plan`, with at most `bound` data waiting per worker."""
    return AdmissionPolicy(
        batched=strategy.batched,
        window=plan.num_stages,
        bound=bound,
        drop_oldest=strategy.drop == "oldest",
        minibatch=plan.minibatch,
        full_batch=strategy.full_batch,
        select=strategy.select,
        batch_window=strategy.batch_window,
        num_stages=plan.num_stages,
        # A learner keeping a window of the latest data (evicting the oldest) chooses from it.
        select_later=strategy.batched and not strategy.full_batch and strategy.drop == "oldest",
    )


def route(sample: int, workers_by_offset: dict[int, Any], num_workers: int) -> Any:
    """The worker of datum `sample` (offset `sample mod N`), or None if that worker is removed."""
    return workers_by_offset.get(sample % num_workers)


def may_start(kind: int, slot_busy: bool, stores: bool, outstanding: int, window: int) -> bool:
    """A ready op may start when its slot is idle — except a forward that would store its datum
    (`stores`: the datum back-propagates through this stage) while the slot's window is full."""
    return not slot_busy and not (kind == FWD and stores and outstanding >= window)


class ReadyOps:
    """One device's ready ops in dispatch order: backward before forward, then the older datum,
    then the one that became ready first. `op` is whatever the caller needs to start it.

    `heap` is a heap of `(kind, sample, seq, op)` in a list, so a hot loop may read it directly:
    `if ready.heap:` (anything queued), `ready.heap[0]` (the first in order) and
    `heapq.heappop(ready.heap)` (take it) cost no method call."""

    __slots__ = ("_seq", "heap")

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, int, Any]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, kind: int, sample: int, op: Any) -> None:
        self._seq += 1
        heappush(self.heap, (kind, sample, self._seq, op))

    def queued(self) -> list[tuple[int, Any]]:
        """Every queued `(kind, op)`, in dispatch order (for a description; not the hot path)."""
        return [(entry[0], entry[3]) for entry in sorted(self.heap, key=lambda entry: entry[:3])]

    def next_startable(
        self, startable: Callable[[int, Any], bool], park: Callable[[tuple[int, int, int, Any]], bool] | None = None
    ) -> tuple[int, Any] | None:
        """Remove and return `(kind, op)` of the first op in dispatch order that `startable`
        allows now, or None; the ops passed over stay queued in their order — except those
        `park(entry)` takes (the caller knows they stay blocked until some event, and then hands
        them back with `restore`, so a long blocked queue is not walked at every dispatch)."""
        heap = self.heap
        if not heap:
            return None
        top = heap[0]
        if startable(top[0], top[3]):  # the common case: the first in order may start
            heappop(heap)
            return top[0], top[3]
        passed = []
        found = None
        while heap:
            entry = heappop(heap)
            if startable(entry[0], entry[3]):
                found = (entry[0], entry[3])
                break
            if park is None or not park(entry):
                passed.append(entry)
        for entry in passed:
            heappush(heap, entry)
        return found

    def restore(self, entries: list[tuple[int, int, int, Any]]) -> None:
        """Queue parked entries again, in their original order."""
        for entry in entries:
            heappush(self.heap, entry)
