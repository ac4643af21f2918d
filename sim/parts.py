"""The engine's mutable pieces: devices, (worker, stage) slots and in-flight data.

Plain classes with `__slots__`: the engine touches them once or twice per simulated op, so
attribute access speed matters more than anything else here.
"""

from __future__ import annotations

from typing import Any

from sim.admission import Batch, Worker


class Device:
    """A compute device with `concurrency` lanes and a heap of ready ops."""

    __slots__ = ("busy_s", "concurrency", "free", "heap", "index")

    def __init__(self, index: int, concurrency: int) -> None:
        self.index = index
        self.concurrency = concurrency
        self.free = concurrency  # idle lanes
        self.heap: list[tuple[Any, ...]] = []  # (kind, sample, seq, slot, stored): backward (0) first
        self.busy_s = 0.0  # lane-seconds spent on ops


class Slot:
    """Stage `stage` of one worker: runs one op at a time, on one device.

    Holds everything a hot path needs about the stage so the engine looks nothing up twice:
    scaled op times, bytes, neighbours, and the open gradient group `acc` of
    `(sample, version)` pairs that closes at `acc_target` backwards.
    """

    __slots__ = (
        "acc",
        "acc_target",
        "act",
        "boundary_in",
        "boundary_out",
        "busy",
        "dev_index",
        "device",
        "home",
        "next",
        "outstanding",
        "prev",
        "recompute",
        "stage",
        "t_bwd_job",
        "t_fwd",
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
        self.busy = False
        self.outstanding = 0  # data stored here: forward started, backward not finished
        self.window = 1
        self.acc: list[tuple[int, int]] = []
        self.acc_target = 1
        self.act = 0
        self.weights = 0
        self.t_fwd = 0.0
        self.t_bwd_job = 0.0  # backward, plus the recomputed forward under T1
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
