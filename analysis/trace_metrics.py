"""The stream metrics of docs/sim.md §2, computed from a trace alone — the same code for a
predicted and a measured trace, so that a difference between them is a difference of runs.

Per datum `t` and stage `i`, the first update including its gradient comes from the `update`
rows' sample lists; from that: SPEC §2's measured R (`sim.result.measured_adaptation_rate`,
the twin's own function), throughput (data trained fully or partly per second of `T`), latency
(arrival → the last stage's first update), and each applied gradient's staleness (the update's
version minus the version its backward used). Drops are the `drop` rows' distinct samples.
Memory comes from `mem` rows (each a device's bytes after a change) when the trace has them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.trace_table import KIND_CODES, TraceTable
from planner.errors import FerretError
from sim.result import measured_adaptation_rate, stream_horizon, stream_latencies, stream_throughput


@dataclass(frozen=True)
class MemoryTimeline:
    """Bytes held per device after each change, in time order; `total` is their sum."""

    t_s: np.ndarray
    per_device: np.ndarray  # (changes, devices)

    @property
    def total(self) -> np.ndarray:
        return self.per_device.sum(axis=1)

    @property
    def peak_per_device(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self.per_device.max(axis=0))

    @property
    def peak_total(self) -> int:
        return int(self.total.max())


@dataclass(frozen=True, eq=False)
class StreamMetrics:
    arrivals: int
    arrival_s: np.ndarray  # per sample
    update_s: np.ndarray  # (samples, stages): first update including the datum, NaN if none
    dropped: int
    horizon_s: float
    adaptation_rate: float | None  # None when the stage shares are unknown
    staleness: np.ndarray  # one entry per applied gradient
    memory: MemoryTimeline | None

    @property
    def throughput_per_s(self) -> float:
        return stream_throughput(self.update_s, self.horizon_s)

    @property
    def drop_rate(self) -> float:
        return self.dropped / self.arrivals

    def latency_quantile(self, q: float) -> float:
        latencies = stream_latencies(self.update_s, self.arrival_s)
        return float(np.quantile(latencies, q)) if len(latencies) else math.nan

    @property
    def mean_staleness(self) -> float:
        return float(self.staleness.mean()) if len(self.staleness) else math.nan

    @property
    def staleness_histogram(self) -> tuple[int, ...]:
        return tuple(int(x) for x in np.bincount(self.staleness)) if len(self.staleness) else ()


def arrival_times(table: TraceTable, where: str) -> np.ndarray:
    """Arrival time of every sample `0..n-1`; a trace missing some (or repeating one) is refused."""
    rows = table.kind == KIND_CODES["arrive"]
    samples = table.sample[rows]
    n = len(samples)
    if n == 0:
        raise FerretError(f"{where}: no arrive rows (not a stream trace, or cut before the first arrival)")
    order = np.argsort(samples, kind="stable")
    if not np.array_equal(samples[order], np.arange(n)):
        raise FerretError(f"{where}: arrive rows do not number samples 0..{n - 1} once each (truncated or merged?)")
    return table.t_start[rows][order]


def first_updates(table: TraceTable, samples: int, stages: int) -> tuple[np.ndarray, np.ndarray]:
    """(first update time per (sample, stage), staleness per applied gradient)."""
    rows = np.flatnonzero(table.kind == KIND_CODES["update"])
    lists = [table.update_samples[i] for i in rows]
    counts = np.fromiter((len(s) for s in lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter((s for group in lists for s in group), dtype=np.int64, count=int(counts.sum()))
    stage = np.repeat(table.stage[rows], counts)
    index = flat * stages + stage
    first = np.full(samples * stages, np.inf)
    np.minimum.at(first, index, np.repeat(table.t_end[rows], counts))

    bwd = table.kind == KIND_CODES["bwd"]
    used = np.full(samples * stages, -1, dtype=np.int64)
    used[table.sample[bwd] * stages + table.stage[bwd]] = table.version[bwd]
    known = used[index] >= 0
    staleness = np.repeat(table.version[rows], counts)[known] - used[index][known]
    first[np.isinf(first)] = np.nan
    return first.reshape(samples, stages), np.maximum(staleness, 0)


def memory_timeline(table: TraceTable) -> MemoryTimeline | None:
    rows = np.flatnonzero(table.kind == KIND_CODES["mem"])
    if len(rows) == 0:
        return None
    order = rows[np.argsort(table.t_end[rows], kind="stable")]
    devices = int(table.device[order].max()) + 1
    held = np.zeros((len(order) + 1, devices), dtype=np.int64)
    for k, i in enumerate(order, start=1):  # one row per change: small next to the ops
        held[k] = held[k - 1]
        held[k, table.device[i]] = table.bytes[i]
    return MemoryTimeline(np.concatenate([[0.0], table.t_end[order]]), held)


def stream_metrics(
    table: TraceTable,
    stages: int,
    shares: np.ndarray | None,
    decay_per_s: float,
    nominal_interval_s: float,
    where: str,
) -> StreamMetrics:
    """Everything `ferret validate` compares, from one trace. `shares` are `w_i / Σ w` (SPEC §2)."""
    arrival = arrival_times(table, where)
    n = len(arrival)
    if table.sample.max() >= n:
        raise FerretError(f"{where}: rows name sample {int(table.sample.max())} but only {n} arrived (truncated?)")
    update, staleness = first_updates(table, n, stages)
    if np.any(update < arrival[:, None]):
        bad = int(np.argwhere(update < arrival[:, None])[0][0])
        raise FerretError(f"{where}: sample {bad} is updated before it arrives (a trace of another clock?)")
    horizon = stream_horizon(arrival, nominal_interval_s)
    rate = None
    if shares is not None:
        rate = measured_adaptation_rate(update, arrival, shares, decay_per_s, horizon)
    dropped = len(np.unique(table.sample[table.kind == KIND_CODES["drop"]]))
    return StreamMetrics(n, arrival, update, dropped, horizon, rate, staleness, memory_timeline(table))
