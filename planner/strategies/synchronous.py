"""GPipe and 1F1B-flush (DAPPLE): synchronous pipelines fed by mini-batches (SPEC §6).

One pipeline, one weight version per stage. It gathers a mini-batch of `B` data (one
micro-batch per datum, as profiled), pushes them through the `P` stages and flushes: every
stage updates once, after the last backward. A pass takes `(B + P - 1)·(tf + tb)` — the
pipeline fill and drain — for both schedules; they differ in memory only.

Steady state: a pass starts when the pipeline is free and a mini-batch is full, so passes
are `T = max(B·td, (B + P - 1)·(tf + tb))` apart. The `b`-th newest datum of a mini-batch
waited `b·td` for the batch to fill, then the whole pass, so its delay is
`b·td + (B + P - 1)·(tf + tb)`. When passes are slower than the batch fills, the data that
arrive meanwhile beyond the next mini-batch are dropped. Every stage is updated at the flush,
so the stage shares sum to one:

    R = V_D · exp(-c·(B + P - 1)·(tf + tb)) · Σ_{b=0}^{B-1} exp(-c·b·td) / T
    M = Σ_j w_j + Σ_j k_j·a_j,   k_j = B (GPipe keeps every micro-batch's activations),
                                  k_j = min(B, P - j) (1F1B keeps at most P - j in flight)

`B` is chosen with the partition to maximise R within the budget (ties: the smaller B),
from 1 to `max_minibatch` (default 4096), unless the caller fixes `minibatch`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from planner.closed_form import stage_sizes, stage_times
from planner.errors import ValidationError
from planner.plan import Plan, WorkerConfig
from planner.profile import ModelProfile
from planner.search import PlanResult
from planner.strategies.base import (
    Strategy,
    StreamSpec,
    check_devices,
    pick,
    resolve_partitions,
    result,
    single_worker_plan,
)

DEFAULT_MAX_MINIBATCH = 4096


def sync_rate(tf: float, tb: float, num_stages: int, minibatch: np.ndarray | int, stream: StreamSpec) -> np.ndarray:
    """R of a synchronous pipeline for one or many mini-batch sizes `B`."""
    B = np.asarray(minibatch, dtype=np.float64)
    passing = (B + num_stages - 1) * (tf + tb)
    period = np.maximum(B * stream.arrival_interval_s, passing)
    x = stream.decay_per_s * stream.arrival_interval_s
    # Σ_{b<B} exp(-c·b·td) in closed form; exactly B without decay.
    waits = B if x == 0.0 else np.expm1(-x * B) / math.expm1(-x)
    return stream.value_per_datum * np.exp(-stream.decay_per_s * passing) * waits / period


class _Synchronous(Strategy):
    option_names: ClassVar[tuple[str, ...]] = ("partition", "num_devices", "minibatch", "max_minibatch")

    @abstractmethod
    def in_flight(self, num_stages: int, minibatch: np.ndarray) -> np.ndarray:
        """(P, len(B)) micro-batches whose activations stage j keeps at once."""

    def memory(self, profile: ModelProfile, partition: tuple[int, ...], minibatch: np.ndarray) -> np.ndarray:
        w, a, _ = stage_sizes(profile, partition)
        kept = self.in_flight(len(partition) - 1, minibatch)
        return int(w.sum()) + (a.astype(np.int64)[:, None] * kept).sum(axis=0)

    def predict(self, profile: ModelProfile, plan: Plan) -> tuple[float, int]:
        tf, tb = stage_times(profile, plan.partition)
        stream = StreamSpec(plan.arrival_interval_s, plan.decay_per_s, plan.value_per_datum)
        B = np.array([plan.minibatch])
        rate = float(sync_rate(tf, tb, plan.num_stages, B, stream)[0])
        return rate, int(self.memory(profile, plan.partition, B)[0])

    def _sizes(self, options: dict[str, Any]) -> np.ndarray:
        fixed, cap = options.get("minibatch"), options.get("max_minibatch", DEFAULT_MAX_MINIBATCH)
        if fixed is not None:
            if int(fixed) < 1:
                raise ValidationError(f"minibatch must be ≥ 1, got {fixed}")
            return np.array([int(fixed)])
        if int(cap) < 1:
            raise ValidationError(f"max_minibatch must be ≥ 1, got {cap}")
        return np.arange(1, int(cap) + 1)

    def _table(
        self, profile: ModelProfile, stream: StreamSpec, budget: int | None, options: dict[str, Any]
    ) -> list[tuple[tuple[int, ...], int, float, int]]:
        """Per partition: (partition, best B, its R, its M) within the budget, else its smallest M."""
        self.check_options(options)
        check_devices(options.get("num_devices"))
        sizes = self._sizes(options)
        rows = []
        for part in resolve_partitions(profile, options.get("partition")):
            tf, tb = stage_times(profile, part)
            rates = sync_rate(tf, tb, len(part) - 1, sizes, stream)
            memory = self.memory(profile, part, sizes)
            i, _ = pick(rates.tolist(), memory.tolist(), budget)
            rows.append((part, int(sizes[i]), float(rates[i]), int(memory[i])))
        return rows

    def plan(self, profile: ModelProfile, stream: StreamSpec, budget_bytes: int | None, **options: Any) -> PlanResult:
        rows = self._table(profile, stream, budget_bytes, options)
        i, feasible = pick([r[2] for r in rows], [r[3] for r in rows], budget_bytes)
        part, minibatch, rate, mem = rows[i]
        floor = self.min_memory(profile, stream, **options)
        worker = WorkerConfig.default(0, len(part) - 1)
        plan = single_worker_plan(self.name, part, worker, stream, budget_bytes, options.get("num_devices"), minibatch)
        log = [
            f"{self.name}: {len(rows)} candidate partitions × mini-batch sizes {self._describe(options)}",
            f"chosen: partition {list(part)} (P={len(part) - 1}), mini-batch {minibatch}, R={rate:.6g}/s, M={mem} B",
        ]
        if not feasible:
            log.append(f"budget {budget_bytes} B is below the smallest footprint, {floor} B")
        return result(plan, rate, mem, feasible, floor, log)

    def _describe(self, options: dict[str, Any]) -> str:
        if options.get("minibatch") is not None:
            return f"= {options['minibatch']}"
        return f"1..{options.get('max_minibatch', DEFAULT_MAX_MINIBATCH)}"

    def min_memory(self, profile: ModelProfile, stream: StreamSpec, **options: Any) -> int:
        self.check_options(options)
        sizes = self._sizes(options)[:1]  # memory grows with B: the smallest size is the floor
        return min(
            int(self.memory(profile, p, sizes)[0]) for p in resolve_partitions(profile, options.get("partition"))
        )


class GPipe(_Synchronous):
    """GPipe: each mini-batch runs all forwards, then all backwards, then a flush.

    Every stage keeps the activations of all B micro-batches, so memory grows linearly in B.
    """

    name = "gpipe"
    summary = "synchronous: all forwards then all backwards of a mini-batch, then a flush; keeps every activation"

    def in_flight(self, num_stages: int, minibatch: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(minibatch, dtype=np.int64), (num_stages, len(minibatch)))


class OneFOneBFlush(_Synchronous):
    """Synchronous 1F1B with a flush per mini-batch (DAPPLE).

    Stage j keeps at most min(B, P−j) micro-batches' activations at once.
    """

    name = "1f1b"
    summary = "synchronous 1F1B with a flush per mini-batch (DAPPLE): at most P-j micro-batches in flight at stage j"

    def in_flight(self, num_stages: int, minibatch: np.ndarray) -> np.ndarray:
        depth = num_stages - np.arange(num_stages)
        return np.minimum(np.asarray(minibatch, dtype=np.int64)[None, :], depth[:, None])
