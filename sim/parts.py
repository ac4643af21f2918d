"""The engine's mutable pieces — devices, (worker, stage) slots, in-flight data — and their assembly.

Plain classes with `__slots__`: the engine touches them once or twice per simulated op, so
attribute access speed matters more than anything else here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from planner.plan import Plan
from sim.admission import Batch, Worker
from sim.algorithm_passes import AlgorithmPasses
from sim.costs import OpCosts, StageBytes
from sim.policy import AdmissionPolicy, ReadyOps


class Device:
    """A compute device with `concurrency` lanes and its ready ops (`(slot, datum)`, in the
    policy's dispatch order)."""

    __slots__ = ("busy_s", "concurrency", "free", "index", "ready")

    def __init__(self, index: int, concurrency: int) -> None:
        self.index = index
        self.concurrency = concurrency
        self.free = concurrency  # idle lanes
        self.ready = ReadyOps()
        self.busy_s = 0.0  # lane-seconds spent on ops


class Slot:
    """Stage `stage` of one worker: runs one op at a time, on one device.

    Holds everything a hot path needs about the stage so the engine looks nothing up twice:
    op times (from the `OpCosts`), bytes, neighbours, and the open gradient group `acc` of
    `(sample, version)` pairs that closes at `acc_target` backwards.
    """

    __slots__ = (
        "acc",
        "acc_target",
        "act",
        "after_s",
        "bare_fwd_job",
        "boundary_in",
        "boundary_out",
        "busy",
        "bwd_job",
        "dev_index",
        "device",
        "fwd_job",
        "home",
        "latest",
        "next",
        "outstanding",
        "overhead",
        "parked",
        "passes_from",
        "prev",
        "recompute",
        "stage",
        "step_end",
        "step_job",
        "t_bwd_job",
        "t_fwd",
        "t_rec",
        "update_s",
        "weights",
        "widx",
        "window",
        "worker",
    )

    def __init__(self, worker: Worker, stage: int, device: Device, home: int) -> None:
        self.worker = worker
        self.widx = worker.index
        self.stage = stage
        self.device = device
        self.dev_index = device.index
        self.home = home  # device holding the stage's live weights and stashed versions
        self.recompute = worker.config.recompute
        self.latest = worker.config.latest  # backward on the weights current when it starts (SPEC §3.2)
        self.busy = False
        self.outstanding = 0  # data stored here: forward started, backward not finished
        self.parked: list[Any] = []  # heap of queued forwards blocked by the full window (not in the device's)
        self.window = 1
        self.acc: list[tuple[int, int]] = []
        self.acc_target = 1
        self.act = 0
        self.weights = 0
        self.t_fwd = 0.0
        self.t_rec = 0.0  # the recomputed forward under T1
        self.t_bwd_job = 0.0  # backward, plus the recomputed forward under T1
        self.overhead = 0.0  # added to every op's time
        self.update_s = 0.0  # the optimizer step, at the end of the backward that closes a group
        # Whole jobs without slow-down or jitter: forward, backward, backward that closes a group.
        self.fwd_job = self.bwd_job = self.step_job = 0.0
        # The algorithm's extra passes (sim/algorithm_passes.py): `fwd_job` holds those run with
        # and before the forward, `bare_fwd_job` is the forward without them (data before
        # `passes_from`), `after_s` holds the device after the datum's backward (0: none).
        self.bare_fwd_job = 0.0
        self.after_s = 0.0
        self.passes_from = 0
        self.step_end: float | None = None  # a sequential learner's step: when its closing backward ends
        self.boundary_out = 0  # bytes sent to the next stage (and its gradient, back)
        self.boundary_in = 0
        self.next: Slot | None = None
        self.prev: Slot | None = None


class Datum:
    """A datum in flight: its worker, how deep its backward goes, the versions it used."""

    __slots__ = ("batch", "bottom", "sample", "versions", "worker")

    def __init__(self, sample: int, worker: Worker, bottom: int, num_stages: int, batch: Batch | None) -> None:
        self.sample = sample
        self.worker = worker
        self.bottom = bottom  # lowest stage its backward reaches (SPEC §3.2 omission rule)
        self.versions = [0] * num_stages
        self.batch = batch


def home_devices(plan: Plan, placement: tuple[tuple[int, ...], ...]) -> list[int]:
    """Where each stage's live weights and stashed versions live: its device in the first active worker."""
    active = [n for n, w in enumerate(plan.workers) if w.active] or [0]
    return [placement[active[0]][j] for j in range(plan.num_stages)]


def build_workers(
    plan: Plan,
    costs: OpCosts,
    sizes: StageBytes,
    policy: AdmissionPolicy,
    devices: list[Device],
    placement: tuple[tuple[int, ...], ...],
    passes: AlgorithmPasses,
) -> list[Worker]:
    """Every worker with its slots: one-row op times, bytes, windows (1F1B: P - j), neighbours."""
    P = plan.num_stages
    home = home_devices(plan, placement)
    workers = []
    for n, cfg in enumerate(plan.workers):
        worker = Worker(n, cfg)
        for j in range(P):
            slot = Slot(worker, j, devices[placement[n][j]], home[j])
            slot.window = policy.stage_window(j, 1)  # batches set theirs per batch
            slot.acc_target = 1 if policy.batched else cfg.accumulation[j]
            slot.act = sizes.stored_bytes(j, cfg.recompute)
            slot.weights = sizes.weight_bytes[j]
            slot.overhead = costs.overhead_s(j)
            slot.update_s = costs.update_s(j)
            set_op_times(slot, costs, passes, rows=1)
            slot.boundary_out = sizes.boundary_bytes[j]
            slot.boundary_in = sizes.boundary_bytes[j - 1] if j else 0
            worker.slots.append(slot)
        for j, slot in enumerate(worker.slots):
            slot.next = worker.slots[j + 1] if j + 1 < P else None
            slot.prev = worker.slots[j - 1] if j else None
        workers.append(worker)
    return workers


def set_op_times(slot: Slot, costs: OpCosts, passes: AlgorithmPasses, rows: int) -> None:
    """The slot's per-datum op times when each op is one row's share of a `rows`-row step
    (pipelines: `rows = 1`; a sequential learner runs its mini-batch row by row), with the
    algorithm's extra passes charged as sim/algorithm_passes.py says."""
    j = slot.stage
    slot.t_fwd = costs.forward(j).share(rows)
    slot.t_rec = costs.recompute(j).share(rows) if slot.recompute else 0.0
    t_bwd = costs.backward(j).share(rows)
    slot.t_bwd_job = t_bwd + slot.t_rec
    slot.fwd_job = slot.bare_fwd_job = slot.t_fwd + slot.overhead
    slot.bwd_job = slot.t_bwd_job + slot.overhead
    slot.step_job = (slot.t_bwd_job + slot.update_s) + slot.overhead
    slot.passes_from = passes.from_sample
    if not passes.none:  # none: the training ops' times exactly, not a sum with zeros
        slot.fwd_job = (slot.t_fwd + passes.forward_extra_s(slot.t_fwd, t_bwd)) + slot.overhead
        slot.after_s = passes.after_s(slot.t_fwd, t_bwd)


class Jitter:
    """Op-time factors from one seeded generator: mean-1 log-normal with log-std `sigma`, or, given
    the measured factors in time order (`empirical`), a circular block bootstrap of them.

    Empirical draws take `block` consecutive entries of `sequence` from a uniformly drawn start,
    wrapping past its end to its beginning (so every entry is drawn as often as the sequence holds
    it), one stream of blocks per device: a device's ops keep the measured run of slow and fast
    phases, and devices do not share one phase. `block = 1` draws every factor independently and
    uniformly (the i.i.d. model), from one stream for all devices.
    """

    def __init__(
        self, rng: np.random.Generator, sigma: float, sequence: tuple[float, ...] = (), block: int = 1, devices: int = 1
    ) -> None:
        self.rng = rng
        self.sigma = sigma
        self.sequence = np.asarray(sequence, dtype=np.float64)
        self.block = block
        self._blocks: list[list[float]] = [[] for _ in range(devices if block > 1 else 1)]
        self._ats = [0] * len(self._blocks)

    def draw(self, device: int) -> float:
        """The next factor of an op on `device`."""
        stream = device if self.block > 1 else 0
        at = self._ats[stream]
        values = self._blocks[stream]
        if at == len(values):
            values = self._blocks[stream] = self._refill()
            at = 0
        self._ats[stream] = at + 1
        return values[at]

    def _refill(self) -> list[float]:
        n = len(self.sequence)
        if not n:
            return self.rng.lognormal(-0.5 * self.sigma**2, self.sigma, 4096).tolist()
        if self.block == 1:
            return self.sequence[self.rng.integers(0, n, 4096)].tolist()
        # ~4096 factors at a time, as the other models draw: one generator call per refill, not per block
        starts = self.rng.integers(0, n, max(1, 4096 // self.block))
        return self.sequence[((starts[:, None] + np.arange(self.block)) % n).ravel()].tolist()
