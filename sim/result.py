"""What a simulation measured (DESIGN.md `SimResult`) and the metric definitions behind it.

The adaptation rate is measured exactly as SPEC §2 defines it: for datum `t` and stage `i`,
`r^t_i` is the time from its arrival to the optimizer step on stage `i` that first includes its
gradient (`+∞` if none does), and

    R = (1/T) · Σ_t Σ_i (w_i / Σ_j w_j) · exp(-c · r^t_i) · V

with `T` the stream's span: `n` mean arrival gaps (`n·td` for periodic arrivals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def stream_horizon(arrival_s: np.ndarray, nominal_interval_s: float) -> float:
    """`T` of SPEC §2: `n` times the mean gap between arrivals (the nominal gap for one datum)."""
    n = len(arrival_s)
    if n >= 2 and arrival_s[-1] > 0:
        return float(arrival_s[-1]) * n / (n - 1)
    return n * nominal_interval_s


def stream_latencies(update_s: np.ndarray, arrival_s: np.ndarray) -> np.ndarray:
    """Per datum trained at any stage: arrival → the last stage update that includes it. The
    twin's and the distributed executor's latency (`update_s`: `[datum, stage]`, NaN: none)."""
    seen = ~np.isnan(update_s).all(axis=1)
    return np.nanmax(update_s[seen], axis=1) - arrival_s[seen]


def stream_throughput(update_s: np.ndarray, horizon_s: float) -> float:
    """Data trained on (fully or partly) per second of stream — the twin's and the executor's."""
    return int((~np.isnan(update_s)).any(axis=1).sum()) / horizon_s


def measured_adaptation_rate(
    update_s: np.ndarray,
    arrival_s: np.ndarray,
    stage_weights: np.ndarray,
    decay_per_s: float,
    horizon_s: float,
    value_per_datum: float = 1.0,
) -> float:
    """SPEC §2's measured R from first-update times `update_s[t, i]` (NaN: never updated)."""
    delays = update_s - arrival_s[:, None]
    if np.any(delays < 0):
        raise AssertionError("an update precedes its datum's arrival")
    kept = np.where(np.isnan(delays), 0.0, np.exp(-decay_per_s * np.nan_to_num(delays, nan=0.0)))
    return float(value_per_datum * (kept @ stage_weights).sum() / horizon_s)


@dataclass(frozen=True, eq=False)
class SimResult:
    strategy: str
    samples: int
    horizon_s: float
    makespan_s: float
    decay_per_s: float
    value_per_datum: float
    stage_weights: np.ndarray  # w_i / Σ w_j
    arrival_s: np.ndarray  # (n,)
    update_s: np.ndarray  # (n, P) first update including the datum's gradient, NaN if none
    dropped: np.ndarray  # (n,) bool
    peak_memory_bytes: int
    peak_memory_per_device: tuple[int, ...]
    baseline_memory_bytes: int
    final_memory_bytes: int
    memory_timeline_s: np.ndarray
    memory_timeline_bytes: np.ndarray  # peak total bytes per time bucket
    memory_timeline_per_device: np.ndarray  # (buckets, devices) peak bytes
    staleness_histogram: tuple[tuple[int, ...], ...]  # per stage: count of applied gradients by staleness
    utilisation: tuple[float, ...]  # per device: busy lane-time / (concurrency · makespan)
    events: int  # trace rows
    ops: int  # compute ops simulated (fwd, bwd jobs)
    wall_s: float
    predicted: dict[str, Any] | None = field(default=None)

    # ----------------------------------------------------------------- metrics
    @property
    def adaptation_rate(self) -> float:
        return self.adaptation_rate_at(self.decay_per_s)

    def adaptation_rate_at(self, decay_per_s: float) -> float:
        return measured_adaptation_rate(
            self.update_s, self.arrival_s, self.stage_weights, decay_per_s, self.horizon_s, self.value_per_datum
        )

    @property
    def updates_per_stage(self) -> tuple[int, ...]:
        return tuple(int(x) for x in (~np.isnan(self.update_s)).sum(axis=0))

    @property
    def trained(self) -> int:
        """Data whose gradient reached every stage."""
        return int((~np.isnan(self.update_s)).all(axis=1).sum())

    @property
    def partially_trained(self) -> int:
        """Data whose gradient reached some stages but not all (back-propagation omission)."""
        seen = ~np.isnan(self.update_s)
        return int((seen.any(axis=1) & ~seen.all(axis=1)).sum())

    @property
    def drop_count(self) -> int:
        return int(self.dropped.sum())

    @property
    def drop_rate(self) -> float:
        return self.drop_count / self.samples if self.samples else 0.0

    @property
    def throughput_per_s(self) -> float:
        """Data trained on (fully or partly) per second of stream."""
        return stream_throughput(self.update_s, self.horizon_s)

    @property
    def latencies_s(self) -> np.ndarray:
        """Per trained datum: arrival → the last stage update that includes it."""
        return stream_latencies(self.update_s, self.arrival_s)

    def latency_quantile(self, q: float) -> float:
        lat = self.latencies_s
        return float(np.quantile(lat, q)) if len(lat) else math.nan

    # ----------------------------------------------------------------- output
    def to_summary(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "samples": self.samples,
            "adaptation_rate": self.adaptation_rate,
            "peak_memory_bytes": self.peak_memory_bytes,
            "throughput_per_s": self.throughput_per_s,
            "drop_rate": self.drop_rate,
            # The distributed executor predicts a datum by its own training forward, so the share
            # of the stream it predicts is the share admitted (docs/distributed.md).
            "predicted_share": 1.0 - self.drop_rate,
            "latency_p50_s": self.latency_quantile(0.5),
            "latency_p99_s": self.latency_quantile(0.99),
            "events": self.events,
            "wall_s": self.wall_s,
            "ops": self.ops,
            "us_per_op": 1e6 * self.wall_s / self.ops if self.ops else None,
            "horizon_s": self.horizon_s,
            "makespan_s": self.makespan_s,
            "decay_per_s": self.decay_per_s,
            "trained": self.trained,
            "partially_trained": self.partially_trained,
            "dropped": self.drop_count,
            "updates_per_stage": list(self.updates_per_stage),
            "peak_memory_per_device": list(self.peak_memory_per_device),
            "baseline_memory_bytes": self.baseline_memory_bytes,
            "utilisation": [round(u, 6) for u in self.utilisation],
            "staleness_histogram": [list(h) for h in self.staleness_histogram],
            "predicted": self.predicted,
        }
