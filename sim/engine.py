"""The discrete-event core: ops on devices, weight versions and memory, on its own event loop.

The clock is a priority queue of events `(time, key, what, a, b, c, e)` (`sim.events`): an op that ends
(`what` = its kind, BWD or FWD: slot, datum, start, slow-down factor; `sim.completion` says
what follows), a transfer that lands (LANDED), the next arrival (ARRIVE) or a window learner's
choice at the end of an instant (CHOICE). At equal times, ops and transfers (priority 1) come
before arrivals (2), which come before choices (3); ties keep the order they were scheduled in
(`key` holds both).
`_loop` reads top to bottom: take the earliest event, apply it, repeat. (This was SimPy, one
`Timeout` per op, whose generality — an `Event` object, a callback list and `env.step` per op,
and private fields read to stay fast — cost more than the model used; docs/sim.md §6.)

A device starts a ready op whenever one of its `concurrency` lanes is free, in the order and
under the rules of `sim.policy` (`ReadyOps`, `may_start`): a ready backward before a ready
forward, then the older datum; a slot runs one op at a time and stores at most its window
(1F1B: `P - j`). A recomputation and the optimizer step that closes a gradient group ride on
their backward's job. Admission is `sim.admission`'s, its decisions `sim.policy`'s. An OCL
algorithm's passes beyond the training step (`SimConfig.algorithm_passes`, sim/algorithm_passes.py)
lengthen the forward's job, or hold the slot and its lane after the op (`end_op`, `release`).

Weights (SPEC §3.2): a forward records its stage's current version; its backward runs against
it; an update applies onto the current version and makes the next one. A latest-weights worker
stashes nothing: its backward (recomputation first) reads the version current when it starts
and holds it until it ends. Memory (SPEC §3.3): a stage keeps its live weights on its home
device plus one copy of every older version an in-flight datum still needs; a stored datum
keeps `a_j - c^r·s_j` activation bytes on its slot's device from the start of its forward to
the end of its backward.

This module and the others on the per-op path are compiled with mypyc (pyproject.toml's
`[tool.ferret] compiled`; `planner.native`): their annotations are checked at run time there, and
module constants are `Final` so that compiled code reads them without a dictionary look-up.
"""

from __future__ import annotations

import gc
import heapq
import math
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Final

import numpy as np
from librt.strings import BytesWriter
from librt.vecs import vec
from mypy_extensions import i64

from planner.omission import bottom_stage
from planner.plan import Plan
from sim.admission import Admission, Batch, Worker
from sim.completion import apply_update, backward_done, forward_done, transient_bytes
from sim.config import SimConfig
from sim.costs import OpCosts, StageBytes
from sim.events import Event, EventQueue, key
from sim.links import LANDED, OP, Links
from sim.memory import MemoryLedger
from sim.parts import Datum, Device, Jitter, Slot, build_workers, home_devices, set_op_times
from sim.policy import BWD, FWD, admission_policy, may_start, route
from sim.rows import write_row
from sim.strategies import SimStrategy
from sim.trace import KIND_CODE, ROW, TraceSink

CHOICE: Final = 3  # event kinds beside BWD, FWD and LANDED (sim/links.py)
ARRIVE: Final = 4
ARRIVAL: Final = 2  # priorities at equal times, after OP (sim/links.py)
LATER: Final = 3
K_ARRIVE: Final = KIND_CODE["arrive"]
K_DROP: Final = KIND_CODE["drop"]
K_MEM: Final = KIND_CODE["mem"]
OP_KEY: Final = key(OP, 0)  # an op's key is OP_KEY + seq
heappush: Final = heapq.heappush  # the devices' ready queues (sim.policy.ReadyOps)
heappop: Final = heapq.heappop


class Engine:
    """One run of a plan on a stream (module docstring); `simulate` builds and reads it."""

    # Slots, not a __dict__: the hot path reads these attributes millions of times.
    __slots__ = (
        "P",
        "admission",
        "arrivals",
        "barrier",
        "baseline",
        "by_offset",
        "config",
        "costs",
        "devices",
        "dropped",
        "events",
        "free_links",
        "home",
        "host_cores",
        "host_running",
        "host_slowdown",
        "in_flight",
        "jitter",
        "ledger",
        "links",
        "mem_rows",
        "now",
        "ops",
        "plain",
        "plan",
        "policy",
        "recomputes",
        "refs",
        "rng",
        "samples_out",
        "seq",
        "sizes",
        "slowdown",
        "staleness",
        "strategy",
        "stream_over",
        "trace",
        "trace_rows",
        "transient",
        "update_t",
        "version",
        "workers",
    )

    def __init__(
        self,
        plan: Plan,
        costs: OpCosts,
        sizes: StageBytes,
        config: SimConfig,
        strategy: SimStrategy,
        placement: tuple[tuple[int, ...], ...],
        arrival_times: np.ndarray,
        seed: int,
        trace: TraceSink,
    ) -> None:
        self.plan, self.costs, self.sizes, self.config, self.strategy = plan, costs, sizes, config, strategy
        self.trace = trace
        # The sink's packed rows and update samples (None: no rows at all); it clears them in place.
        self.trace_rows: BytesWriter | None = trace.rows if trace.keeps_rows else None
        self.samples_out: list[int] = trace.samples
        self.now = 0.0
        self.events = EventQueue()
        self.seq = 0  # ties at equal (time, priority): scheduling order (`sim.events.key`)
        self.barrier = strategy.barrier
        P = self.P = plan.num_stages
        self.devices = [Device(d, config.concurrency) for d in range(1 + max(d for r in placement for d in r))]
        self.slowdown = config.slowdown
        self.host_cores, self.host_slowdown = config.host_cores, config.host_slowdown
        self.host_running = 0  # ops running on every device (one host)
        # No slow-down, no jitter, no host limit: every op lasts its precomputed job.
        self.plain = not config.slowdown and config.jitter == "none" and config.host_cores is None
        self.transient = config.transient_memory
        self.free_links = costs.free_links
        self.links = Links(costs, self.schedule, self.trace_rows)
        jitter_seed, select_seed = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.default_rng(select_seed)
        sequence = costs.jitter_sequence if config.jitter == "empirical" else ()
        self.jitter = (
            Jitter(
                np.random.default_rng(jitter_seed),
                config.jitter_sigma,
                sequence,
                config.jitter_block,
                len(self.devices),
            )
            if config.jitter != "none"
            else None
        )

        self.arrivals = arrival_times
        n = len(arrival_times)
        # A float start (0.0), not sum()'s int 0: compiled, the sum is typed by its start.
        one_pass = sum((costs.forward(j).seconds(1) for j in range(P)), 0.0) + sum(
            (costs.backward(j).seconds(1) for j in range(P)), 0.0
        )
        self.ledger = MemoryLedger(
            len(self.devices),
            float(arrival_times[-1]) * 1.25 + one_pass,
            on_change=self._emit_mem if config.trace_memory else None,
        )
        # Flat [sample * P + stage]: a C array of doubles (librt.vecs), set natively when compiled.
        self.update_t: vec[float] = vec[float](repeat(math.nan, n * P))
        self.dropped = np.zeros(n, dtype=bool)
        # Per stage, applied gradients by staleness τ = index (C int64 arrays: counted natively when compiled).
        self.staleness: list[vec[i64]] = [vec[i64]() for _ in range(P)]
        self.version = [0] * P
        self.refs: list[dict[int, int]] = [{} for _ in range(P)]  # stage → {version: users}
        self.in_flight = 0
        self.ops = 0
        self.recomputes = 0
        self.mem_rows = 0
        self.stream_over = False
        self.home = home_devices(plan, placement)
        self.policy = admission_policy(strategy, plan, strategy.buffer_bound(plan, config.input_buffer))
        self.workers = build_workers(plan, costs, sizes, self.policy, self.devices, placement, config.algorithm_passes)
        self.by_offset = {w.config.offset: w for w in self.workers if w.config.active}
        self.baseline = self._allocate_baseline()
        self.admission = Admission(self, self.policy, strategy.single_device)

    def _allocate_baseline(self) -> int:
        """Live weights, optimizer state and compensation buffers of every stage, from t = 0."""
        per_weight_byte = 1 + self.config.optimizer_state_ratio + self.config.compensation_buffers
        total = 0
        for j in range(self.P):
            nbytes = round(self.sizes.weight_bytes[j] * per_weight_byte)
            self.ledger.alloc(self.home[j], nbytes, 0.0)
            total += nbytes
        return total

    @property
    def rows(self) -> int:
        """Trace rows of the run (whether or not a sink kept them)."""
        updates = sum(self.version)
        return (
            len(self.arrivals)
            + int(self.dropped.sum())
            + self.ops
            + self.recomputes
            + updates
            + self.mem_rows
            + 2 * self.links.transfers
        )

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        # The run allocates millions of short-lived tuples and builds no reference cycles, so the
        # cyclic collector's passes over them are pure overhead.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._loop()
        finally:
            if collecting:
                gc.enable()
        self.trace.flush()
        self.ledger.settle()
        if self.in_flight:
            raise AssertionError(f"sim: {self.in_flight} data still in flight after the event queue drained")
        for j, refs in enumerate(self.refs):
            if refs:
                raise AssertionError(f"sim: stage {j} still references weight versions {sorted(refs)} after draining")

    def _loop(self) -> None:
        queue = self.events
        times = _chunked(self.arrivals)
        first = next(times)
        # The stream starts at 0; its first datum is due at once if it arrives then.
        self.schedule(first if first > 0 else 0.0, ARRIVAL, ARRIVE, 0, first, times, None)
        while len(queue):
            event: Event = queue.pop()
            t, _, what, a, b, c, e = event
            self.now = t
            if what == FWD:
                forward_done(self, a, b, c, t, e)
            elif what == BWD:
                backward_done(self, a, b, c, t, e)
            elif what == ARRIVE:
                self._arrivals(a, b, c)
            elif what == LANDED:
                self.links.landed(a, b, c, t)
                self.ready(a, c[0], b, t)
            else:
                a(b)

    def schedule(self, t: float, priority: int, what: int, a: object, b: object, c: object, e: object) -> None:
        self.seq += 1
        self.events.push(t, key(priority, self.seq), what, a, b, c, e)

    def _arrivals(self, i: int, t: float, rest: Iterator[float]) -> None:
        """Datum `i` (time `t`) and every later one due at once, routed and admitted or dropped;
        then the next arrival is scheduled `t - now` later, as a timed wait would be."""
        now = self.now
        rows, admission = self.trace_rows, self.admission
        num_workers = len(self.workers)
        while True:
            worker = route(i, self.by_offset, num_workers)
            if rows is not None:
                write_row(rows, K_ARRIVE, i, -1 if worker is None else worker.index, -1, -1, t, t, -1, 0, 0, 0)
            if worker is None:
                self.drop(i, None, t, removed=True)
            else:
                admission.arrive(worker, i, t)
            i += 1
            following = next(rest, None)
            if following is None:
                self.stream_over = True
                for w in self.workers:
                    admission.stream_end(w, now)
                break
            t = following
            delay = t - now
            if delay > 0:
                self.schedule(now + delay, ARRIVAL, ARRIVE, i, t, rest, None)
                break
        # Keep the trace buffer one chunk long (the memory ledger folds its own).
        if rows is not None and len(rows) >= self.trace.chunk_rows * ROW.size:
            self.trace.flush()

    # ------------------------------------------------------------------ scheduling
    def ready(self, slot: Slot, kind: int, d: Datum, now: float, chosen: bool = False) -> None:
        """Op `kind` of `d` can run at `slot`: start it if its device has a free lane, nothing
        is queued before it and the policy allows (`chosen`: the dispatch took it off the
        device's queue); else queue it."""
        dev = slot.device
        if not chosen and not (
            dev.free
            and not dev.ready.heap
            and may_start(kind, slot.busy, slot.stage >= d.bottom, slot.outstanding, slot.window)
        ):
            dev.ready.push(kind, d.sample, (slot, d))
            if dev.free:
                self.dispatch(dev, now)
            return
        dev.free -= 1
        self.host_running += 1
        slot.busy = True
        if kind:
            j = slot.stage
            v = self.version[j]
            d.versions[j] = v
            if j >= d.bottom:
                if not slot.latest:  # weight stashing: the datum holds its forward's version
                    refs = self.refs[j]
                    refs[v] = refs.get(v, 0) + 1
                slot.outstanding += 1
                self.ledger.change(now, slot.dev_index, slot.act)
            # an algorithm's passes with the forward start at a datum (sim/algorithm_passes.py)
            job = slot.fwd_job if d.sample >= slot.passes_from else slot.bare_fwd_job
        else:
            if slot.latest:  # the recomputation reads the weights current now and holds them
                j = slot.stage
                v = d.versions[j] = self.version[j]
                refs = self.refs[j]
                refs[v] = refs.get(v, 0) + 1
            closes = len(slot.acc) + 1 == slot.acc_target
            job = slot.step_job if closes else slot.bwd_job
            if self.transient:
                self.ledger.change(now, slot.dev_index, transient_bytes(self, slot, opening=not slot.acc))
        if self.plain:  # no slow-down, no jitter: the precomputed job, `(base + overhead) · 1`
            end = slot.step_end if not kind and closes and slot.step_end is not None else now + job
            self.seq += 1
            self.events.push(end, OP_KEY + self.seq, kind, slot, d, now, 1.0)
        else:
            factor = 1.0
            running = dev.concurrency - dev.free - 1  # ops already running beside this one
            if running and self.slowdown:
                factor += self.slowdown * running
            if self.host_cores is not None:  # ops on the host's other devices, beyond its cores
                excess = self.host_running - running - self.host_cores
                if excess > 0:
                    factor *= 1.0 + self.host_slowdown * excess
            if self.jitter is not None:
                factor *= self.jitter.draw(slot.dev_index)
            end = now + job * factor  # job = (base + overhead), as set_op_times sums it
            self.seq += 1
            self.events.push(end, OP_KEY + self.seq, kind, slot, d, now, factor)
        self.ops += 1

    def dispatch(self, dev: Device, now: float) -> None:
        """Start queued ops while the device has free lanes, in the policy's order."""
        ready = dev.ready
        heap = ready.heap
        while dev.free and heap:
            entry = heap[0]  # the first in dispatch order: usually it may start
            kind = entry[0]
            op: tuple[Slot, Datum] = entry[3]  # typed: native attribute reads below when compiled
            slot, d = op
            if may_start(kind, slot.busy, slot.stage >= d.bottom, slot.outstanding, slot.window):
                heappop(heap)
            else:
                found = ready.next_startable(self._startable, self._park)
                if found is None:
                    return
                kind, op = found
                slot, d = op
            self.ready(slot, kind, d, now, chosen=True)

    @staticmethod
    def _startable(kind: int, op: tuple[Slot, Datum]) -> bool:
        slot, d = op
        return may_start(kind, slot.busy, slot.stage >= d.bottom, slot.outstanding, slot.window)

    @staticmethod
    def _park(entry: tuple[int, int, int, tuple[Slot, Datum]]) -> bool:
        """A queued forward blocked by its slot's full window stays blocked until one of the
        slot's backwards ends (`unpark`): it waits beside the slot, not in the device's queue
        (1F1B-flush with a large mini-batch queues hundreds of them)."""
        slot, d = entry[3]
        if entry[0] == FWD and slot.stage >= d.bottom and slot.outstanding >= slot.window:
            heappush(slot.parked, entry)
            return True
        return False

    @staticmethod
    def unpark(slot: Slot) -> None:
        """The slot's window has room for `r` more: its `r` best parked forwards queue again (no
        other could start before the window fills again)."""
        parked = slot.parked
        room = slot.window - slot.outstanding
        if parked and room > 0:
            slot.device.ready.restore([heappop(parked) for _ in range(min(room, len(parked)))])

    def end_op(self, slot: Slot, hold_s: float, now: float) -> None:
        """The op at `slot` has ended: the slot and its device lane are free — or, with an
        algorithm's pass after it (`hold_s` > 0, sim/algorithm_passes.py), taken `hold_s` longer,
        then `release` frees them."""
        if hold_s:
            slot.device.busy_s += hold_s
            self.schedule(now + hold_s, OP, CHOICE, self.release, slot, None, None)
        else:
            self._free(slot)

    def release(self, slot: Slot) -> None:
        """The pass `end_op` held the slot for is over: it is free; queued ops may start."""
        self._free(slot)
        dev = slot.device
        if dev.free and dev.ready.heap:
            self.dispatch(dev, self.now)

    def _free(self, slot: Slot) -> None:
        slot.device.free += 1
        self.host_running -= 1
        slot.busy = False

    def apply_update(self, slot: Slot, t_start: float, now: float) -> None:
        """Step `slot.stage` with its open gradient group (a group the stream's end closes early)."""
        apply_update(self, slot, t_start, now)

    def staleness_histogram(self) -> tuple[tuple[int, ...], ...]:
        """Per stage: applied gradients by staleness 0, 1, … (up to the largest seen)."""
        return tuple(tuple(h) for h in self.staleness)

    # ------------------------------------------------------------------ called by admission
    def new_datum(self, sample: int, worker: Worker, batch: Batch | None = None) -> Datum:
        """Admit `sample` into `worker` as its next datum; its backward depth follows SPEC §3.2 (T3)."""
        k = worker.count
        worker.count += 1
        every = worker.backward_every
        # No omission (every stage back-propagates every datum): bottom_stage's answer is 0.
        d = Datum(sample, worker, 0 if every[0] == 1 else bottom_stage(every, k), self.P, batch)
        self.in_flight += 1
        worker.inflight += 1
        return d

    def start_datum(self, d: Datum) -> None:
        self.ready(d.worker.slots[0], FWD, d, self.now)

    def step_rows(self, slot: Slot, rows: int) -> None:
        """A sequential learner's next step trains `rows` rows: each of its per-datum ops takes
        one row's share of the cost model's `rows`-row op (its fixed part amortised)."""
        passes = self.config.algorithm_passes
        set_op_times(slot, self.costs, passes, rows)
        if self.plain and not (slot.overhead or slot.update_s or slot.recompute) and passes.none:
            # The step ends when the cost model's `rows`-row step does, `start + fixed + rows·per_row`
            # (the sequential executor's arithmetic), not at the float sum of its rows' shares.
            f, b = self.costs.forward(slot.stage), self.costs.backward(slot.stage)
            slot.step_end = self.now + ((f.fixed_s + b.fixed_s) + rows * (f.per_row_s + b.per_row_s))

    def after_arrivals(self, callback: Callable[[Worker], None], worker: Worker) -> None:
        """Call `callback(worker)` at this instant, after its arrivals (a learner's choice)."""
        self.schedule(self.now, LATER, CHOICE, callback, worker, None, None)

    def drop(self, sample: int, worker: Worker | None, t: float, removed: bool = False) -> None:
        self.dropped[sample] = True
        if self.trace_rows is not None:
            write_row(
                self.trace_rows,
                K_DROP,
                sample,
                -1 if worker is None else worker.index,
                -1,
                -1,
                t,
                t,
                -1,
                0,
                int(removed),
                0,
            )

    def _emit_mem(self, device: int, held: int, t: float) -> None:
        self.mem_rows += 1
        if self.trace_rows is not None:
            write_row(self.trace_rows, K_MEM, -1, -1, -1, device, t, t, -1, 0, held, 0)


def _chunked(values: np.ndarray, size: int = 4096) -> Iterator[float]:
    """The values as Python floats, converted a chunk at a time (no stream-long list)."""
    for start in range(0, len(values), size):
        yield from values[start : start + size].tolist()
