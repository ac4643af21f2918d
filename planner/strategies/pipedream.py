"""PipeDream and PipeDream-2BW: one asynchronous 1F1B worker with weight stashing (SPEC §6).

Both are Ferret's closed forms applied to a single worker, with one correction Ferret's (F3)
does not need: one worker absorbs one datum per cycle `tf + tb` and drops the rest, but it
cannot absorb more than arrive, so its delivery rate is `1 / max(cycle, td)` instead of
(F3)'s `1 / cycle`. Hence `R = R_F3(one worker) · min(1, cycle / td)` and `M = M_F4`.

* PipeDream: no technique; stage j stashes `P - j` weight versions (`c^a = 1`, `c^o = 0`).
* PipeDream-2BW: double-buffered weights. Every stage accumulates `c^a = max(1, P-1)`
  gradients per update — the smallest uniform accumulation with which (F4) needs at most
  2 versions at every stage (`1 + ⌈(P-1-j)/(P-1)⌉ = 2` for j < P-1, 1 for the last stage),
  which is PipeDream-2BW's `m ≥ d` rule in (F4)'s accounting.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from planner.closed_form import adaptation_rate, cycle_time, memory_bytes, stage_times
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


def delivery_factor(profile: ModelProfile, plan: Plan) -> float:
    """`min(1, cycle / td)`: the share of (F3)'s one-datum-per-cycle that actually arrives."""
    tf, tb = stage_times(profile, plan.partition)
    recompute = any(w.recompute for w in plan.workers if w.active)
    return min(1.0, cycle_time(tf, tb, recompute) / plan.arrival_interval_s)


class _OneWorker(Strategy):
    @abstractmethod
    def worker(self, num_stages: int) -> WorkerConfig:
        """The single worker's configuration for P stages."""

    def predict(self, profile: ModelProfile, plan: Plan) -> tuple[float, int]:
        return adaptation_rate(profile, plan) * delivery_factor(profile, plan), memory_bytes(profile, plan)

    def _plans(self, profile: ModelProfile, stream: StreamSpec, budget: int | None, **options: Any) -> list[Plan]:
        self.check_options(options)
        check_devices(options.get("num_devices"))
        return [
            single_worker_plan(self.name, p, self.worker(len(p) - 1), stream, budget, options.get("num_devices"))
            for p in resolve_partitions(profile, options.get("partition"))
        ]

    def plan(self, profile: ModelProfile, stream: StreamSpec, budget_bytes: int | None, **options: Any) -> PlanResult:
        plans = self._plans(profile, stream, budget_bytes, **options)
        predictions = [self.predict(profile, p) for p in plans]
        rates = [r for r, _ in predictions]
        memory = [m for _, m in predictions]
        i, feasible = pick(rates, memory, budget_bytes)
        floor = min(memory)
        log = [
            f"{self.name}: {len(plans)} candidate partitions, one worker each",
            f"chosen: partition {list(plans[i].partition)} (P={plans[i].num_stages}), R={rates[i]:.6g}/s, M={memory[i]} B",
        ]
        if not feasible:
            log.append(f"budget {budget_bytes} B is below the smallest footprint, {floor} B")
        return result(plans[i], rates[i], memory[i], feasible, floor, log)

    def min_memory(self, profile: ModelProfile, stream: StreamSpec, **options: Any) -> int:
        return min(self.predict(profile, p)[1] for p in self._plans(profile, stream, None, **options))


class PipeDream(_OneWorker):
    """PipeDream: one asynchronous 1F1B worker with weight stashing (P−j versions at stage j).

    Its rate is (F3) scaled by `delivery_factor`: data arriving faster than one per cycle are dropped.
    """

    name = "pipedream"
    summary = "one async 1F1B worker, weight stashing (P-j versions per stage), data it cannot absorb are dropped"

    def worker(self, num_stages: int) -> WorkerConfig:
        return WorkerConfig.default(0, num_stages)


class PipeDream2BW(_OneWorker):
    """PipeDream-2BW: one asynchronous worker, two weight versions, gradients accumulated over P−1 data.

    Rated like `PipeDream`: (F3) times the share of data one worker can absorb.
    """

    name = "pipedream-2bw"
    summary = "one async worker, double-buffered weights (2 versions), gradient accumulation over P-1 data"

    def worker(self, num_stages: int) -> WorkerConfig:
        return WorkerConfig(0, False, (max(1, num_stages - 1),) * num_stages, (0,) * num_stages)
