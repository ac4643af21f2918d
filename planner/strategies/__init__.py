"""Pipeline strategies by name (SPEC §6): Ferret and the pipelines it is compared with.

Each strategy makes a plan for a budget and predicts (R, M) of its plans in closed form;
`docs/planner.md` states every strategy's closed form and assumptions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from planner.errors import ValidationError
from planner.limits import check_plannable
from planner.placement import owner_placement
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.provenance import content_id
from planner.registry import Registry
from planner.search import PlanResult
from planner.strategies.base import Strategy, StreamSpec, check_devices
from planner.strategies.ferret import Ferret
from planner.strategies.pipedream import PipeDream, PipeDream2BW
from planner.strategies.synchronous import GPipe, OneFOneBFlush

STRATEGIES: Registry[Strategy] = Registry(
    "strategy", {s.name: s for s in (Ferret(), PipeDream(), PipeDream2BW(), GPipe(), OneFOneBFlush())}
)

__all__ = [
    "STRATEGIES",
    "Strategy",
    "StreamSpec",
    "get_strategy",
    "make_plan",
    "make_plans",
    "minimal_budget",
    "predict",
]


def get_strategy(name: str) -> Strategy:
    return STRATEGIES[name]


def make_plan(
    strategy: str,
    profile: ModelProfile,
    arrival_interval_s: float,
    decay_per_s: float = 1.0,
    budget_bytes: int | None = None,
    value_per_datum: float = 1.0,
    **options: Any,
) -> PlanResult:
    """The strategy's best plan within `budget_bytes` (None: unconstrained, Ferret's M+).

    An infeasible budget gives `feasible=False` and names the smallest footprint reached.
    """
    if budget_bytes is not None and budget_bytes <= 0:
        raise ValidationError(f"budget must be a positive number of bytes, got {budget_bytes}")
    stream = StreamSpec(arrival_interval_s, decay_per_s, value_per_datum)
    check_plannable(profile, arrival_interval_s)
    devices = options.pop("num_devices", None)
    return _finished(get_strategy(strategy).plan(profile, stream, budget_bytes, **options), profile, devices)


def make_plans(
    strategy: str,
    profile: ModelProfile,
    arrival_interval_s: float,
    budgets: Sequence[int | None],
    decay_per_s: float = 1.0,
    value_per_datum: float = 1.0,
    **options: Any,
) -> list[PlanResult]:
    """`make_plan` for each budget, sharing the strategy's budget-independent work (sweeps)."""
    for budget in budgets:
        if budget is not None and budget <= 0:
            raise ValidationError(f"budget must be a positive number of bytes, got {budget}")
    stream = StreamSpec(arrival_interval_s, decay_per_s, value_per_datum)
    check_plannable(profile, arrival_interval_s)
    devices = options.pop("num_devices", None)
    results = get_strategy(strategy).plan_many(profile, stream, budgets, **options)
    return [_finished(r, profile, devices) for r in results]


def _finished(result: PlanResult, profile: ModelProfile, num_devices: int | None) -> PlanResult:
    """The result with its plan placed (`num_devices`: every stage on one owner device,
    planner/placement.py: contiguous blocks balanced by stage time — the placement a distributed
    run needs, and the one the twin then simulates; without, each (worker, stage) on its own
    device) and its provenance: the profile it was made from (planner/provenance.py)."""
    check_devices(num_devices)
    plan = result.plan
    if num_devices is not None:
        plan = dataclasses.replace(
            plan, placement=owner_placement(profile, plan.partition, plan.num_workers, num_devices)
        )
    made_from = {**profile.made_from(), "profile": content_id(profile.to_json())}
    return dataclasses.replace(result, plan=dataclasses.replace(plan, provenance=made_from))


def predict(profile: ModelProfile, plan: Plan) -> tuple[float, int]:
    """Closed-form (adaptation rate, memory bytes) of any strategy's plan."""
    plan.validate(profile.num_layers)
    return get_strategy(plan.strategy).predict(profile, plan)


def minimal_budget(
    profile: ModelProfile,
    arrival_interval_s: float,
    decay_per_s: float = 1.0,
    value_per_datum: float = 1.0,
    strategy: str = "ferret",
    **options: Any,
) -> int:
    """The smallest budget the strategy can satisfy (Ferret's M−)."""
    stream = StreamSpec(arrival_interval_s, decay_per_s, value_per_datum)
    check_plannable(profile, arrival_interval_s)
    return get_strategy(strategy).min_memory(profile, stream, **options)
