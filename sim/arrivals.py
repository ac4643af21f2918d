"""Arrival processes: when each datum of the stream arrives. Seeded and deterministic.

A process maps `(n, seed)` to `n` non-decreasing arrival times in seconds, the first at 0.
`make_arrivals("poisson", interval_s=2e-3)` builds one from a CLI spec; `trace:FILE` replays a
CSV of timestamps. The registry `ARRIVALS` is the list of families.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from planner.errors import FerretError, ValidationError
from planner.quantities import MAX_TIME_S, check_time
from planner.registry import Registry


class ArrivalProcess(Protocol):
    """What every arrival family provides: a `name`, its mean gap and seeded arrival times.

    `times(n, seed)` is deterministic in `(n, seed)`: `n` non-decreasing times in seconds, the first at
    0. Families are built by name through `ARRIVALS` / `make_arrivals`.
    """

    @property
    def name(self) -> str: ...

    @property
    def mean_interval_s(self) -> float: ...

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        """`n` arrival times (float64 seconds), non-decreasing, starting at 0."""
        ...


ARRIVALS: Registry[Callable[..., ArrivalProcess]] = Registry(
    "arrival process", message="unknown {kind} {name!r}; choose one of {choices} (as trace:FILE)"
)
register_arrival = ARRIVALS.register


def _check_interval(interval_s: float) -> None:
    check_time(interval_s, "arrival interval", positive=True)


def _check_n(n: int) -> None:
    if n < 0:
        raise ValidationError(f"number of arrivals must be ≥ 0, got {n}")


@dataclass(frozen=True)
class _MeanInterval:
    """A process defined by its mean gap `interval_s` (checked positive)."""

    interval_s: float

    def __post_init__(self) -> None:
        _check_interval(self.interval_s)

    @property
    def mean_interval_s(self) -> float:
        return self.interval_s


@register_arrival("fixed")
@dataclass(frozen=True)
class FixedArrivals(_MeanInterval):
    """Exactly periodic: datum `i` arrives at `i·interval` (the closed forms' assumption)."""

    name: str = "fixed"

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        _check_n(n)
        return np.arange(n, dtype=np.float64) * self.interval_s


@register_arrival("poisson")
@dataclass(frozen=True)
class PoissonArrivals(_MeanInterval):
    """Exponential gaps with mean `interval_s`; the first datum arrives at 0."""

    name: str = "poisson"

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        _check_n(n)
        if n == 0:
            return np.zeros(0)
        gaps = np.random.default_rng(seed).exponential(self.interval_s, size=n - 1)
        return np.concatenate(([0.0], np.cumsum(gaps)))


@register_arrival("bursty")
@dataclass(frozen=True)
class BurstyArrivals(_MeanInterval):
    """Two-state Markov-modulated Poisson process with overall mean gap `interval_s`.

    In the burst state the rate is `burst_ratio` times the calm rate; the chain spends a
    fraction `burst_fraction` of the time bursting, in sojourns of mean `burst_len`
    arrivals' worth of mean intervals. The calm rate is set so the long-run mean gap is
    `interval_s`.
    """

    burst_ratio: float = 10.0
    burst_fraction: float = 0.2
    burst_len: float = 50.0
    name: str = "bursty"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.burst_ratio >= 1:
            raise ValidationError(f"bursty: burst_ratio must be ≥ 1, got {self.burst_ratio}")
        if not 0 < self.burst_fraction < 1:
            raise ValidationError(f"bursty: burst_fraction must be in (0, 1), got {self.burst_fraction}")
        if not self.burst_len > 0:
            raise ValidationError(f"bursty: burst_len must be positive, got {self.burst_len}")

    @property
    def rates(self) -> tuple[float, float]:
        """(calm rate, burst rate) in arrivals per second."""
        mean_rate = 1.0 / self.interval_s
        calm = mean_rate / (self.burst_fraction * self.burst_ratio + 1.0 - self.burst_fraction)
        return calm, calm * self.burst_ratio

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        _check_n(n)
        if n == 0:
            return np.zeros(0)
        rng = np.random.default_rng(seed)
        calm_rate, burst_rate = self.rates
        burst_dwell = self.burst_len * self.interval_s
        calm_dwell = burst_dwell * (1.0 - self.burst_fraction) / self.burst_fraction
        # Start in the stationary distribution so the stream has no warm-up transient.
        bursting = rng.random() < self.burst_fraction
        chunks: list[np.ndarray] = []
        count, t = 0, 0.0
        while count < n:
            dwell = rng.exponential(burst_dwell if bursting else calm_dwell)
            rate = burst_rate if bursting else calm_rate
            k = rng.poisson(rate * dwell)
            if k:
                chunk = np.sort(rng.uniform(t, t + dwell, size=k))
                chunks.append(chunk)
                count += k
            t += dwell
            bursting = not bursting
        out = np.concatenate(chunks)[:n]
        return out - out[0]


@dataclass(frozen=True)
class TraceArrivals:
    """Replay the timestamps of a CSV file (a `t`/`time`/`t_s` column, else the first).

    Times are shifted so the first arrival is at 0; they must be non-decreasing.
    """

    path: str
    name: str = "trace"

    def _load(self) -> np.ndarray:
        p = Path(self.path)
        try:
            with p.open(newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except FileNotFoundError:
            raise FerretError(f"arrival trace not found: {p}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise FerretError(f"cannot read arrival trace {p}: {exc}") from None
        rows = [r for r in rows if r and any(cell.strip() for cell in r)]
        if not rows:
            raise FerretError(f"arrival trace {p} is empty")
        column, start = 0, 0
        header = [cell.strip().lower() for cell in rows[0]]
        if not _is_number(rows[0][0]):
            for name in ("t", "time", "t_s", "timestamp", "arrival_s"):
                if name in header:
                    column = header.index(name)
                    break
            start = 1
        values = []
        for lineno, row in enumerate(rows[start:], start=start + 1):
            cell = row[column] if column < len(row) else ""
            if not _is_number(cell):
                raise FerretError(f"arrival trace {p} line {lineno}: {cell!r} is not a time in seconds")
            values.append(float(cell))
        if not values:
            raise FerretError(f"arrival trace {p} holds a header but no times")
        times = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(times)) or np.abs(times).max() > MAX_TIME_S:
            raise FerretError(f"arrival trace {p} holds a time that is not finite or beyond {MAX_TIME_S:g} s")
        if np.any(np.diff(times) < 0):
            raise FerretError(f"arrival trace {p} is not sorted: times must be non-decreasing")
        return times - times[0]

    @property
    def mean_interval_s(self) -> float:
        times = self._load()
        return float(times[-1] / (len(times) - 1)) if len(times) > 1 else math.inf

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        _check_n(n)
        times = self._load()
        if n > len(times):
            raise FerretError(f"arrival trace {self.path} has {len(times)} timestamps, {n} were asked for")
        return times[:n]


ARRIVALS.add("trace", TraceArrivals)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def make_arrivals(spec: str, interval_s: float | None = None) -> ArrivalProcess:
    """Build an arrival process from a CLI spec: `fixed`, `poisson`, `bursty`, `trace:FILE`."""
    if spec.startswith("trace:"):
        path = spec.split(":", 1)[1]
        if not path:
            raise FerretError("arrival spec 'trace:' needs a file, e.g. trace:arrivals.csv")
        return TraceArrivals(path)
    make = ARRIVALS[spec]
    if make is TraceArrivals:
        raise FerretError("arrival process 'trace' needs a file: trace:FILE, e.g. trace:arrivals.csv")
    if interval_s is None:
        raise FerretError(f"arrival process {spec!r} needs an arrival interval")
    return make(interval_s)
