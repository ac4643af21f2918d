"""Ferret (SPEC §3–§4): N interleaved asynchronous workers with T1–T4, planned by Alg. 2 + 3."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from planner.closed_form import adaptation_rate, memory_bytes
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.search import FerretPlanner, PlanResult
from planner.strategies.base import Strategy, StreamSpec, check_devices, resolve_partitions


class Ferret(Strategy):
    """Ferret (Alg. 2 + 3): N interleaved asynchronous workers, searched by `FerretPlanner`.

    One planner serves every budget of `plan_many`; predictions are (F3) and (F4) exactly.
    """

    name = "ferret"
    summary = "N interleaved async workers; recomputation, accumulation, omission, worker removal (Alg. 2 + 3)"

    def planner(self, profile: ModelProfile, stream: StreamSpec, **options: Any) -> FerretPlanner:
        self.check_options(options)
        check_devices(options.get("num_devices"))
        partition = options.get("partition")
        return FerretPlanner(
            profile,
            stream.arrival_interval_s,
            stream.decay_per_s,
            stream.value_per_datum,
            partitions=None if partition is None else resolve_partitions(profile, partition),
            num_devices=options.get("num_devices"),
        )

    def plan(self, profile: ModelProfile, stream: StreamSpec, budget_bytes: int | None, **options: Any) -> PlanResult:
        return self.planner(profile, stream, **options).plan(budget_bytes)

    def plan_many(
        self, profile: ModelProfile, stream: StreamSpec, budgets: Sequence[int | None], **options: Any
    ) -> list[PlanResult]:
        # One planner keeps its partitions, chains and bounds between budgets (a sweep's big saving).
        planner = self.planner(profile, stream, **options)
        return [planner.plan(budget) for budget in budgets]

    def predict(self, profile: ModelProfile, plan: Plan) -> tuple[float, int]:
        return adaptation_rate(profile, plan), memory_bytes(profile, plan)

    def min_memory(self, profile: ModelProfile, stream: StreamSpec, **options: Any) -> int:
        return self.planner(profile, stream, **options).min_memory_bytes()
