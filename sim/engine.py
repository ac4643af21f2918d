"""The discrete-event core: ops on devices, weight versions and memory, on SimPy's event loop.

A device keeps a heap of ready ops — a ready backward before a ready forward, then the older
datum first — and starts one whenever one of its `concurrency` lanes is free and the op's
(worker, stage) slot is idle. A slot runs one op at a time and stores at most `window` data
(1F1B: `P - j`), which makes every worker a 1F1B pipeline. A started op is one SimPy timeout
whose callback completes it; a recomputation and the optimizer step that closes a gradient
group ride on their backward's timeout. One event per op, one per arrival, one per link
transfer: docs/sim.md has the measurements behind this structure.

Weights (SPEC §3.2): a forward records its stage's current version; its backward runs against
it; an update applies onto the current version and makes the next one. A latest-weights worker
stashes nothing: its backward (recomputation first) reads the version current when it starts
and holds it until it ends. Memory (SPEC §3.3): a
stage keeps its live weights on its home device plus one copy of every older version an
in-flight datum still needs; a stored datum keeps `a_j - c^r·s_j` activation bytes on its
slot's device from the start of its forward to the end of its backward.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import numpy as np
import simpy
from simpy.events import Event, EventPriority, Timeout

from planner.omission import bottom_stage
from planner.plan import Plan
from sim.admission import Admission, Batch, Worker
from sim.config import SimConfig
from sim.costs import OpCosts, StageBytes
from sim.links import Links
from sim.memory import MemoryLedger
from sim.parts import Datum, Device, Jitter, Slot, build_workers, home_devices, set_op_times
from sim.policy import BWD, FWD, admission_policy, may_start
from sim.strategies import SimStrategy
from sim.trace import TraceSink

CHOICE_PRIORITY = EventPriority(3)  # after the arrivals of the instant (`sim.admission.ARRIVAL_PRIORITY`)


class Engine:
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
        self.env = simpy.Environment()
        self.trace = trace
        self.emit = trace.rows.append
        P = self.P = plan.num_stages
        self.devices = [Device(d, config.concurrency) for d in range(1 + max(d for r in placement for d in r))]
        self.slowdown = config.slowdown
        self.transient = config.transient_memory
        self.free_links = costs.free_links
        self.links = Links(self.env, costs, self.emit, self.ready)
        jitter_seed, select_seed = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.default_rng(select_seed)
        self.jitter = (
            Jitter(np.random.default_rng(jitter_seed), config.jitter_sigma) if config.jitter != "none" else None
        )

        self.arrivals = arrival_times
        n = len(arrival_times)
        one_pass = sum(costs.forward(j).seconds(1) for j in range(P)) + sum(
            costs.backward(j).seconds(1) for j in range(P)
        )
        horizon = float(arrival_times[-1]) * 1.25 + one_pass
        self.ledger = MemoryLedger(len(self.devices), horizon)
        if config.trace_memory:
            self.ledger.on_change = self._emit_mem
        self.update_t = np.full(n * P, np.nan)  # flat [sample * P + stage]: cheaper to index
        self.dropped = np.zeros(n, dtype=bool)
        self.staleness: list[list[int]] = [[] for _ in range(P)]
        self.version = [0] * P
        self.refs: list[dict[int, int]] = [{} for _ in range(P)]  # stage → {version: data using it}
        self.in_flight = 0
        self._seq = 0
        self.ops = 0
        self.stream_over = False
        self.home = home_devices(plan, placement)
        self.policy = admission_policy(strategy, plan, strategy.buffer_bound(plan, config.input_buffer))
        self.workers = build_workers(plan, costs, sizes, self.policy, self.devices, placement)
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

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        self.env.process(self.admission.stream(self.env, self.arrivals, self.trace, self.by_offset))
        # The run allocates millions of short-lived tuples and builds no reference cycles, so the
        # cyclic collector's passes over them are pure overhead (~7 % of the run).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.env.run()
        finally:
            if collecting:
                gc.enable()
        self.trace.flush()
        if self.in_flight:
            raise AssertionError(f"sim: {self.in_flight} data still in flight after the event queue drained")
        for j, refs in enumerate(self.refs):
            if refs:
                raise AssertionError(f"sim: stage {j} still references weight versions {sorted(refs)} after draining")

    # ------------------------------------------------------------------ scheduling
    def ready(self, slot: Slot, kind: int, d: Datum) -> None:
        dev = slot.device
        if (
            dev.free
            and not dev.ready
            and may_start(kind, slot.busy, slot.stage >= d.bottom, slot.outstanding, slot.window)
        ):
            self._start(dev, slot, kind, d)
            return
        dev.ready.push(kind, d.sample, (slot, d))
        if dev.free:
            self._dispatch(dev)

    def _dispatch(self, dev: Device) -> None:
        while dev.free:
            found = dev.ready.next_startable(self._startable)
            if found is None:
                return
            kind, (slot, d) = found
            self._start(dev, slot, kind, d)

    @staticmethod
    def _startable(kind: int, op: tuple[Slot, Datum]) -> bool:
        slot, d = op
        return may_start(kind, slot.busy, slot.stage >= d.bottom, slot.outstanding, slot.window)

    def _start(self, dev: Device, slot: Slot, kind: int, d: Datum) -> None:
        now = self.env._now
        running = dev.concurrency - dev.free
        dev.free -= 1
        slot.busy = True
        if kind:
            j = slot.stage
            v = self.version[j]
            d.versions[j] = v
            base = slot.t_fwd
            if j >= d.bottom:
                if not slot.latest:  # weight stashing: the datum holds its forward's version
                    refs = self.refs[j]
                    refs[v] = refs.get(v, 0) + 1
                slot.outstanding += 1
                self.ledger.alloc(slot.dev_index, slot.act, now)
        else:
            if slot.latest:  # the recomputation reads the weights current now and holds them
                j = slot.stage
                v = d.versions[j] = self.version[j]
                refs = self.refs[j]
                refs[v] = refs.get(v, 0) + 1
            base = slot.t_bwd_job
            if len(slot.acc) + 1 == slot.acc_target:
                base += slot.update_s
            if self.transient:
                self.ledger.alloc(slot.dev_index, self._transient_bytes(slot, opening=not slot.acc), now)
        factor = 1.0
        if running and self.slowdown:
            factor += self.slowdown * running
        if self.jitter is not None:
            factor *= self.jitter.draw()
        ev = Timeout(self.env, (base + slot.overhead) * factor, (kind, d, slot, now, factor))
        ev.callbacks.append(self._finish)
        self.ops += 1

    def _transient_bytes(self, slot: Slot, opening: bool) -> int:
        """What a backward holds beyond (F4): its gradient, rebuilt activations, a new accumulation buffer."""
        extra = slot.weights + (self.sizes.recompute_saving[slot.stage] if slot.recompute else 0)
        if opening and slot.acc_target > 1:
            extra += slot.weights
        return extra

    def _finish(self, ev: Event) -> None:
        kind, d, slot, t0, factor = ev._value
        now = self.env._now
        dev = slot.device
        dev.free += 1
        dev.busy_s += now - t0
        slot.busy = False
        if kind:
            self._forward_done(d, slot, t0, now)
        else:
            self._backward_done(d, slot, t0, now, factor)
        if dev.ready and dev.free:
            self._dispatch(dev)

    # ------------------------------------------------------------------ op completion
    def _forward_done(self, d: Datum, slot: Slot, t0: float, now: float) -> None:
        j = slot.stage
        stored = slot.act if j >= d.bottom else 0
        self.emit(("fwd", d.sample, slot.widx, j, slot.dev_index, t0, now, d.versions[j], 0, stored))
        nxt = slot.next
        if nxt is not None:
            if self.free_links or nxt.device is slot.device:
                self.ready(nxt, FWD, d)
            else:
                self.links.transfer(slot, nxt, FWD, d, slot.boundary_out, now)
        elif self.strategy.barrier:
            batch: Batch = d.batch  # type: ignore[assignment]
            batch.parked.append(d)
            if len(batch.parked) == batch.size:
                parked, batch.parked = batch.parked, []
                for other in parked:
                    self.ready(slot, BWD, other)
        else:
            self.ready(slot, BWD, d)

    def _backward_done(self, d: Datum, slot: Slot, t0: float, now: float, factor: float) -> None:
        sample = d.sample
        j = slot.stage
        v = d.versions[j]
        cur = self.version[j]
        refs = self.refs[j]
        left = refs[v] - 1
        ledger = self.ledger
        if left:
            refs[v] = left
        else:
            del refs[v]
            if v != cur:  # the last datum that needed this old version is done: its copy goes
                ledger.free(slot.home, slot.weights, now)
        slot.outstanding -= 1
        ledger.free(slot.dev_index, slot.act, now)
        if self.transient:
            ledger.free(slot.dev_index, self._transient_bytes(slot, opening=False), now)
        t = t0 + slot.overhead * factor
        if slot.recompute:
            t = t + slot.t_rec * factor
            self.emit(("recompute", sample, slot.widx, j, slot.dev_index, t0, t, v, 0, 0))
            t0 = t
        acc = slot.acc
        acc.append((sample, v))
        closes = len(acc) == slot.acc_target
        t_bwd = now  # the optimizer step, if any, is the job's tail
        if closes and slot.update_s:
            t_bwd = min(now, t + (slot.t_bwd_job - slot.t_rec) * factor)
        self.emit(("bwd", sample, slot.widx, j, slot.dev_index, t0, t_bwd, v, cur - v, 0))
        if closes:
            self.apply_update(slot, t_bwd, now)
        prev = slot.prev
        if j > d.bottom:
            assert prev is not None
            if self.free_links or prev.device is slot.device:
                self.ready(prev, BWD, d)
            else:
                self.links.transfer(slot, prev, BWD, d, slot.boundary_in, now)
        else:
            self.in_flight -= 1
            self.admission.datum_done(d, now)

    def apply_update(self, slot: Slot, t_start: float, now: float) -> None:
        """Step `slot.stage` with the gradients in `slot.acc`: version `cur` becomes `cur + 1`."""
        j = slot.stage
        cur = self.version[j]
        if cur in self.refs[j]:  # an in-flight datum still needs `cur`: it turns into a stashed copy
            self.ledger.alloc(slot.home, slot.weights, now)
        self.version[j] = cur + 1
        hist = self.staleness[j]
        update_t = self.update_t
        P = self.P
        acc = slot.acc
        worst = 0
        for sample, v in acc:
            tau = cur - v
            if tau > worst:
                worst = tau
            if tau >= len(hist):
                hist.extend([0] * (tau + 1 - len(hist)))
            hist[tau] += 1
            update_t[sample * P + j] = now
        samples = str(acc[0][0]) if len(acc) == 1 else ",".join([str(s) for s, _ in acc])
        self.emit(("update", -1, slot.widx, j, slot.dev_index, t_start, now, cur, worst, 0, samples))
        if self.transient and slot.acc_target > 1:
            self.ledger.free(slot.dev_index, slot.weights, now)  # the accumulation buffer closes
        slot.acc = []

    # ------------------------------------------------------------------ called by admission
    def new_datum(self, sample: int, worker: Worker, batch: Batch | None = None) -> Datum:
        """Admit `sample` into `worker` as its next datum; its backward depth follows SPEC §3.2 (T3)."""
        k = worker.count
        worker.count += 1
        d = Datum(sample, worker, bottom_stage(worker.backward_every, k), self.P, batch)
        self.in_flight += 1
        worker.inflight += 1
        return d

    def start_datum(self, d: Datum) -> None:
        self.ready(d.worker.slots[0], FWD, d)

    def step_rows(self, slot: Slot, rows: int) -> None:
        """A sequential learner's next step trains `rows` rows: each of its per-datum ops takes
        one row's share of the cost model's `rows`-row op (its fixed part amortised)."""
        set_op_times(slot, self.costs, rows)

    def after_arrivals(self, callback: Callable[[Worker], None], worker: Worker) -> None:
        """Call `callback(worker)` at this instant, after its arrivals (a learner's choice)."""
        ev = Event(self.env)
        ev._ok = True
        ev._value = None
        ev.callbacks.append(lambda _: callback(worker))
        self.env.schedule(ev, CHOICE_PRIORITY)

    def drop(self, sample: int, worker: Worker | None, t: float, removed: bool = False) -> None:
        self.dropped[sample] = True
        self.emit(("drop", sample, -1 if worker is None else worker.index, -1, -1, t, t, -1, 0, int(removed)))

    def _emit_mem(self, device: int, held: int, t: float) -> None:
        self.emit(("mem", -1, -1, -1, device, t, t, -1, 0, held))
