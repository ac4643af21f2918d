"""What every pipeline strategy provides, and the helpers they share.

A strategy turns (profile, stream, budget) into a `PlanResult` and predicts (R, M) of any of
its plans in closed form. Strategies other than Ferret search the same candidate partitions
as Alg. 3 (one per distinct stage-time cap) unless the caller fixes the partition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from planner.errors import ValidationError
from planner.partition import candidate_partitions
from planner.plan import Plan, WorkerConfig, default_placement
from planner.profile import ModelProfile
from planner.quantities import MAX_DEVICES
from planner.search import PlanResult
from planner.stream import StreamSpec


class Strategy(ABC):
    """A pipeline strategy: plans (profile, stream, budget) and predicts (R, M) of its plans in closed form.

    Subclasses set `name` (the registry key in `STRATEGIES`), `summary` and the `option_names` they
    accept; `check_options` rejects any other option with a `ValidationError`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for --help and the docs
    option_names: ClassVar[tuple[str, ...]] = ("partition", "num_devices")

    @abstractmethod
    def plan(self, profile: ModelProfile, stream: StreamSpec, budget_bytes: int | None, **options: Any) -> PlanResult:
        """The best plan of this strategy within the budget, or an infeasible result."""

    def plan_many(
        self, profile: ModelProfile, stream: StreamSpec, budgets: Sequence[int | None], **options: Any
    ) -> list[PlanResult]:
        """Plans for several budgets; a strategy that can share work between budgets overrides this."""
        return [self.plan(profile, stream, budget, **options) for budget in budgets]

    @abstractmethod
    def predict(self, profile: ModelProfile, plan: Plan) -> tuple[float, int]:
        """Closed-form (adaptation rate, memory bytes) of one of this strategy's plans."""

    @abstractmethod
    def min_memory(self, profile: ModelProfile, stream: StreamSpec, **options: Any) -> int:
        """The smallest footprint any plan of this strategy reaches (its M−)."""

    def check_options(self, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.option_names))
        if unknown:
            allowed = ", ".join(self.option_names)
            raise ValidationError(f"strategy {self.name!r} takes no option {', '.join(unknown)} (it takes: {allowed})")


def resolve_partitions(profile: ModelProfile, partition: Sequence[int] | None) -> list[tuple[int, ...]]:
    """The caller's partition (checked against the profile) or every Alg. 3 candidate."""
    if partition is None:
        return candidate_partitions(profile)
    part = tuple(int(x) for x in partition)
    probe = Plan("check", part, (WorkerConfig.default(0, max(1, len(part) - 1)),), ((0,) * max(1, len(part) - 1),), 1.0)
    probe.validate(profile.num_layers)
    return [part]


def check_devices(num_devices: int | None) -> None:
    if num_devices is not None and not 1 <= num_devices <= MAX_DEVICES:
        raise ValidationError(f"number of devices must be in [1, {MAX_DEVICES}], got {num_devices}")


def single_worker_plan(
    strategy: str,
    partition: tuple[int, ...],
    worker: WorkerConfig,
    stream: StreamSpec,
    budget_bytes: int | None,
    num_devices: int | None,
    minibatch: int = 1,
) -> Plan:
    P = len(partition) - 1
    return Plan(
        strategy=strategy,
        partition=partition,
        workers=(worker,),
        placement=default_placement(1, P, num_devices),
        arrival_interval_s=stream.arrival_interval_s,
        decay_per_s=stream.decay_per_s,
        budget_bytes=budget_bytes,
        value_per_datum=stream.value_per_datum,
        minibatch=minibatch,
    )


def pick(rates: Sequence[float], memory: Sequence[int], budget_bytes: int | None) -> tuple[int, bool]:
    """Index of the highest rate within budget (ties: first) and True; if nothing fits, the
    smallest footprint (ties: higher rate, then first) and False."""
    fits = [i for i, m in enumerate(memory) if budget_bytes is None or m <= budget_bytes]
    if fits:
        return max(fits, key=lambda i: (rates[i], -i)), True
    return min(range(len(memory)), key=lambda i: (memory[i], -rates[i], i)), False


def result(plan: Plan, rate: float, mem: int, feasible: bool, floor: int, log: list[str]) -> PlanResult:
    return PlanResult(plan.with_prediction(rate, mem, feasible), feasible, rate, mem, floor, tuple(log))
