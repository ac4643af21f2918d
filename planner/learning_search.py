"""Planning for learning (`--objective learning`): Alg. 3's partitions, each with the paper's
best configuration and with latest-weights backward, ranked by the learning-aware score.

For every candidate partition and each `c^r` the Ferret planner (Alg. 2) gives its best plan
within the budget under (F3) — the paper's plans, weight stashing (`FerretPlanner.candidate_plans`:
one planner for every partition, its chains built once and kept across budgets). Beside them
stands the latest-weights plan of each partition: `N = ⌈(2·tf + tb)/td⌉` workers, all active,
each recomputing its stages on the latest weights (SPEC §3.2), when its footprint fits the
budget. Memory-saving steps (S2–S4) are not combined with latest weights: under a budget it
cannot meet untouched, the stashed plans with those steps remain the candidates. The plan with
the largest `learning_rate` (planner/learning.py) wins; ties go to the smaller footprint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from planner.closed_form import adaptation_rate, memory_bytes, num_workers
from planner.learning import LearningModel, learning_rate
from planner.plan import LATEST, Plan, WorkerConfig, default_placement
from planner.profile import ModelProfile
from planner.search import FerretPlanner, PlanResult


@dataclass(frozen=True)
class Scored:
    """A candidate plan with its learning-aware score (planner/learning.py) and (F4) footprint."""

    plan: Plan
    score: float
    memory: int


def latest_plan(
    profile: ModelProfile,
    partition: tuple[int, ...],
    arrival_interval_s: float,
    decay_per_s: float = 1.0,
    value_per_datum: float = 1.0,
    budget_bytes: int | None = None,
    num_devices: int | None = None,
) -> Plan:
    """Every worker active, recomputing on the latest weights; as many as keep up with arrivals."""
    P = len(partition) - 1
    N = num_workers(profile, partition, arrival_interval_s, recompute=True)
    workers = tuple(WorkerConfig(n, True, (1,) * P, (0,) * P, LATEST) for n in range(N))
    return Plan(
        strategy="ferret",
        partition=partition,
        workers=workers,
        placement=default_placement(N, P, num_devices),
        arrival_interval_s=arrival_interval_s,
        decay_per_s=decay_per_s,
        budget_bytes=budget_bytes,
        value_per_datum=value_per_datum,
    )


class LearningPlanner:
    """Ranks every candidate plan by the learning-aware score; `plan(budget)` as FerretPlanner's."""

    def __init__(
        self,
        profile: ModelProfile,
        arrival_interval_s: float,
        model: LearningModel,
        decay_per_s: float = 1.0,
        value_per_datum: float = 1.0,
        partitions: list[tuple[int, ...]] | None = None,
        num_devices: int | None = None,
    ) -> None:
        self.profile = profile
        self.model = model.validate()
        self.paper = FerretPlanner(
            profile, arrival_interval_s, decay_per_s, value_per_datum, partitions=partitions, num_devices=num_devices
        )
        self.partitions = self.paper.partitions
        self._latest = [
            self._scored(latest_plan(profile, p, arrival_interval_s, decay_per_s, value_per_datum, None, num_devices))
            for p in self.partitions
        ]

    def candidates(self, budget_bytes: int | None) -> list[Scored]:
        out = [self._scored(plan) for plan in self.paper.candidate_plans(budget_bytes)]
        for latest in self._latest:
            if budget_bytes is None or latest.memory <= budget_bytes:
                out.append(Scored(replace(latest.plan, budget_bytes=budget_bytes), latest.score, latest.memory))
        return out

    def min_memory_bytes(self) -> int:
        """Latest-weights plans take no memory-saving step: the paper's planner finds the floor."""
        return self.paper.min_memory_bytes()

    def plan(self, budget_bytes: int | None) -> PlanResult:
        options = self.candidates(budget_bytes)
        if not options:  # nothing fits: the paper's planner says why and with what floor
            return self.paper.plan(budget_bytes)
        best = max(options, key=lambda s: (s.score, -s.memory))
        rate = adaptation_rate(self.profile, best.plan)
        plan = best.plan.with_prediction(rate, best.memory, True)
        kinds = sorted({w.backward_weights for w in plan.workers if w.active})
        td = plan.arrival_interval_s
        log = (
            f"objective learning: {len(options)} candidate plans over {len(self.partitions)} partitions, "
            f"model: {self.model.fitted_on or 'fitted'}",
            f"chosen: partition {list(plan.partition)} (P={plan.num_stages}), N={plan.num_workers} "
            f"({len(plan.active_workers)} active), backward weights {'/'.join(kinds)}, "
            f"learning score {best.score * td:.4f} of Oracle's, R={rate:.6g}/s, M={best.memory} B",
        )
        return PlanResult(plan, True, rate, best.memory, self.min_memory_bytes(), log)

    def _scored(self, plan: Plan) -> Scored:
        return Scored(plan, learning_rate(self.profile, plan, self.model), memory_bytes(self.profile, plan))
