"""Ferret (SPEC §3–§4): N interleaved asynchronous workers with T1–T4, planned by Alg. 2 + 3."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from planner.closed_form import adaptation_rate, memory_bytes
from planner.errors import ValidationError
from planner.learning import BUILTIN, OBJECTIVES, LearningModel
from planner.learning_search import LearningPlanner
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.search import FerretPlanner, PlanResult
from planner.strategies.base import Strategy, StreamSpec, check_devices, resolve_partitions

PAPER_OBJECTIVE = "rate"


class Ferret(Strategy):
    """Ferret (Alg. 2 + 3): N interleaved asynchronous workers, searched by `FerretPlanner`.

    One planner serves every budget of `plan_many`. Options beyond the shared ones: `objective` —
    `rate`, the paper's (F3) and the default here, or `learning`, the learning-aware score of
    planner/learning.py, which also weighs latest-weights backward (`ferret plan` defaults to it)
    — and `learning_model`, the fitted discounts (default: the built-in fit)."""

    name = "ferret"
    summary = "N interleaved async workers; recomputation, accumulation, omission, worker removal (Alg. 2 + 3)"
    option_names = ("partition", "num_devices", "objective", "learning_model")

    def planner(self, profile: ModelProfile, stream: StreamSpec, **options: Any) -> FerretPlanner | LearningPlanner:
        self.check_options(options)
        check_devices(options.get("num_devices"))
        partition = options.get("partition")
        objective = options.get("objective", PAPER_OBJECTIVE)
        if objective not in OBJECTIVES:
            raise ValidationError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if objective == "learning":
            model = options.get("learning_model") or BUILTIN
            if not isinstance(model, LearningModel):
                raise ValidationError(f"learning_model must be a LearningModel, got {type(model).__name__}")
            return LearningPlanner(
                profile,
                stream.arrival_interval_s,
                model,
                stream.decay_per_s,
                stream.value_per_datum,
                partitions=None if partition is None else resolve_partitions(profile, partition),
                num_devices=options.get("num_devices"),
            )
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
