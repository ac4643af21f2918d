"""Stalls of whole devices: per device, a renewal process of intervals during which it runs nothing.

A CPU rank that shares its cores with other processes is descheduled now and then for 10–85 ms,
and then every op it has in hand waits at once (docs/FIDELITY.md, "Stalls come in bursts").
Per-op jitter drawn independently spreads the same stall time over unrelated ops; this process
puts it where it falls: one interval that holds the device.

The model (`StallTable`, fitted by `ferret calibrate`, costs.json's `stall_rate_per_s` and
`stall_durations_s`): per device, stalls fall due on its **busy clock** — the seconds it has
spent running ops — with exponential gaps of rate `rate_per_s`; each lasts a duration drawn
uniformly from the measured table, and the op running when it falls due ends that much later
(`Stalls.finish`). The busy clock, not the wall clock, because the scheduler preempts a running
thread, and because that is what a trace shows: a stall of an idle rank is not seen, so the fit's
rate is per second of busy time (analysis/calibrate/stalls.py). With one op at a time per device
(CPU ranks) the stall holds the whole device; with more lanes it holds the op that drew it.
Links (the wire) are not stalled.

Reproducible: every device draws from its own generator, spawned from the run's seed, so a
device's stalls do not depend on what the others ran.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.errors import ValidationError


@dataclass(frozen=True)
class StallTable:
    """The fitted process: stalls per second of device time outside stalls, and measured durations (s)."""

    rate_per_s: float
    durations_s: tuple[float, ...]

    def __post_init__(self) -> None:
        check_stall_table(self.rate_per_s, self.durations_s, "stall table")

    @property
    def mean_s(self) -> float:
        return sum(self.durations_s) / len(self.durations_s)


def check_stall_table(rate_per_s: float, durations_s: Sequence[float], where: str) -> None:
    """A stall table as the twin draws from it: a finite rate > 0 and a non-empty, sorted table of
    finite durations > 0."""
    if not (isinstance(rate_per_s, int | float) and math.isfinite(rate_per_s) and rate_per_s > 0):
        raise ValidationError(f"{where}: stall_rate_per_s must be a finite rate > 0, got {rate_per_s!r}")
    if not durations_s:
        raise ValidationError(f"{where}: stall_durations_s is empty (leave both stall fields out for no stalls)")
    if not all(isinstance(d, int | float) and math.isfinite(d) and d > 0 for d in durations_s):
        raise ValidationError(f"{where}: stall_durations_s must be finite times > 0")
    if any(b < a for a, b in itertools.pairwise(durations_s)):
        raise ValidationError(f"{where}: stall_durations_s must be sorted ascending")


class DeviceStalls:
    """One device's stalls on its busy clock (the seconds it has run ops), drawn from its own generator."""

    def __init__(self, rng: np.random.Generator, table: StallTable) -> None:
        self.rng = rng
        self.scale = 1.0 / table.rate_per_s
        self.durations = np.asarray(table.durations_s, dtype=np.float64)
        self.worked = 0.0  # busy seconds so far
        self.next_at = float(rng.exponential(self.scale))  # on the busy clock

    def finish(self, start: float, work: float) -> float:
        """When an op of `work` seconds started at `start` ends: after its work and every stall
        that falls due while it runs."""
        worked = self.worked + work
        held = 0.0
        while self.next_at <= worked:
            held += float(self.durations[int(self.rng.integers(0, len(self.durations)))])
            self.next_at += float(self.rng.exponential(self.scale))
        self.worked = worked
        return start + work + held


class Stalls:
    """Every device's stalls for one run (`SimConfig.stalls`), from one seed."""

    def __init__(self, seed: np.random.SeedSequence, devices: int, table: StallTable) -> None:
        self.devices = [DeviceStalls(np.random.default_rng(s), table) for s in seed.spawn(devices)]

    def finish(self, device: int, start: float, work: float) -> float:
        return self.devices[device].finish(start, work)
