"""Ferret's bi-level search (SPEC §4): Alg. 2 (`itersearch`, `search`) inside Alg. 3 (`plan_ferret`).

`FerretPlanner` holds everything that does not depend on the budget — the candidate
partitions and, built on demand, one worker chain per (partition, c^r) — so a budget sweep
pays for the chains once. For one budget, (partition, c^r) pairs are visited in order of an
upper bound on their rate (`min(N, ⌊M/M_min⌋)·R_0`: no worker rates above its no-technique
rate and none fits in less than one version per stage) and skipped when the bound cannot
beat the best found; the result is the same as visiting all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from planner.errors import ValidationError
from planner.plan import REMOVED, Plan, WorkerConfig, default_placement
from planner.profile import ModelProfile
from planner.stream import check_stream
from tests.planner.reference_search.bounds import RateBound
from tests.planner.reference_search.closed_form import adaptation_rate, ceil_ratio, memory_bytes
from tests.planner.reference_search.partition import candidate_partitions, num_caps
from tests.planner.reference_search.walk import Blocks, Walk, best_walk
from tests.planner.reference_search.worker_chain import StageModel, build_chain, stage_model

MAX_LOG_LINES = 40
_BOUND_SLACK = 1e-9


@dataclass(frozen=True)
class PlanResult:
    plan: Plan  # plan.feasible and plan.predicted filled in
    feasible: bool
    adaptation_rate: float
    memory_bytes: int
    min_memory_bytes: int  # smallest footprint the search reached (names the infeasibility)
    log: tuple[str, ...] = ()


@dataclass
class _Candidate:
    """One (partition, c^r) of Alg. 3 with its budget-independent numbers."""

    order: int
    model: StageModel
    num_workers: int
    blocks: Blocks | None = field(default=None, repr=False)

    bound: RateBound | None = field(default=None, repr=False)

    @cached_property
    def rate0(self) -> float:
        return float(self.model.coeff.sum())

    @cached_property
    def memory0(self) -> int:
        P = self.model.num_stages
        return int(sum((P - j) * int(b) for j, b in enumerate(self.model.stage_bytes)))


class FerretPlanner:
    """Alg. 3 over all candidate partitions (or the given ones) for one profile and stream."""

    def __init__(
        self,
        profile: ModelProfile,
        arrival_interval_s: float,
        decay_per_s: float = 1.0,
        value_per_datum: float = 1.0,
        partitions: Sequence[Sequence[int]] | None = None,
        recompute: Sequence[bool] = (False, True),
        num_devices: int | None = None,
    ) -> None:
        check_stream(arrival_interval_s, decay_per_s, value_per_datum)
        self.profile = profile
        self.arrival_interval_s = arrival_interval_s
        self.decay_per_s = decay_per_s
        self.value_per_datum = value_per_datum
        self.num_devices = num_devices
        if partitions is None:
            self.partitions = candidate_partitions(profile)
            self.caps = num_caps(profile)
        else:
            self.partitions = [tuple(int(x) for x in p) for p in partitions]
            self.caps = 0
        self.candidates: list[_Candidate] = []
        for p in self.partitions:
            for cr in recompute:
                model = stage_model(profile, p, cr, decay_per_s, value_per_datum)
                # Decision (docs/planner.md §2): S1 keeps N = ⌈(tf + tb)/td⌉ instead of adding
                # workers for the longer cycle; (F3) would otherwise reward recomputation.
                n = ceil_ratio(model.tf + model.tb, arrival_interval_s)
                self.candidates.append(_Candidate(len(self.candidates), model, n))

    # ---------------------------------------------------------------- budget-independent
    def blocks(self, cand: _Candidate) -> Blocks:
        if cand.blocks is None:
            cand.blocks = Blocks(build_chain(cand.model))
        return cand.blocks

    def min_memory_bytes(self) -> int:
        """The smallest footprint any plan of this search reaches (Ferret M−)."""
        return min(c.model.min_worker_bytes for c in self.candidates)

    def max_memory_bytes(self) -> int:
        """The footprint of the unconstrained best plan (Ferret M+)."""
        return self.plan(None).memory_bytes

    # ---------------------------------------------------------------- one budget
    def plan(self, budget_bytes: int | None, prune: bool = True) -> PlanResult:
        """Alg. 3 for one budget; `prune=False` searches every pair (same result, for tests)."""
        if budget_bytes is not None and budget_bytes <= 0:
            raise ValidationError(f"budget must be a positive number of bytes or None, got {budget_bytes}")
        B = budget_bytes
        floor = self.min_memory_bytes()
        if B is not None and floor > B:
            return self._infeasible(B, floor)
        best: tuple[float, int, _Candidate, Walk | None] | None = None
        searched = pruned = 0

        def beaten(bound: float, cand: _Candidate) -> bool:
            return best is not None and (bound, -cand.order) <= (best[0], -best[1])

        fitting = [c for c in self.candidates if B is None or c.model.min_worker_bytes <= B]
        # Candidates whose unconstrained plan fits need no search: their value is exact.
        exact = {c.order: B is None or c.num_workers * c.memory0 <= B for c in fitting}
        bounds = {c.order: self._bound(c, B, exact[c.order]) for c in fitting}
        for cand in sorted(fitting, key=lambda c: (-bounds[c.order], c.order)):
            if prune and beaten(bounds[cand.order], cand):
                pruned += 1
                continue
            if exact[cand.order]:
                value, walk = bounds[cand.order], None
            else:
                assert B is not None
                blocks = self.blocks(cand)
                walk = best_walk(blocks, cand.num_workers, B)
                assert walk is not None, "a candidate whose one-version footprint fits must have a fitting walk"
                value = blocks.totals(walk, cand.num_workers)[0]
            searched += 1
            if best is None or (value, -cand.order) > (best[0], -best[1]):
                best = (value, cand.order, cand, walk)
        assert best is not None
        _, _, cand, walk = best
        log = [
            self._header(),
            f"budget {_fmt_budget(B)}: searched {searched} (partition, c^r) pairs, skipped {pruned} by rate bounds",
        ]
        return self._result(cand, walk, B, True, floor, log)

    @staticmethod
    def _bound(cand: _Candidate, budget: int | None, exact: bool) -> float:
        """The candidate's exact value when its unconstrained plan fits, else an upper bound."""
        if exact or budget is None:
            return cand.num_workers * cand.rate0
        if cand.bound is None:
            cand.bound = RateBound.of(cand.model, cand.num_workers)
        bound = cand.bound(budget)
        # A bound can be tight (no decay: S2 loses nothing); the search's own sums then round
        # to either side of it, so widen it well past rounding before using it to skip.
        return bound * (1 + _BOUND_SLACK)

    # ---------------------------------------------------------------- results
    def _header(self) -> str:
        source = f"{self.caps} stage-time caps" if self.caps else "given partitions"
        return f"Alg. 3: {source} -> {len(self.partitions)} distinct partitions, {len(self.candidates)} (partition, c^r) pairs"

    def _workers(self, cand: _Candidate, walk: Walk | None) -> tuple[WorkerConfig, ...]:
        N, P = cand.num_workers, cand.model.num_stages
        if walk is None:
            return tuple(WorkerConfig.default(n, P, cand.model.recompute) for n in range(N))
        blocks = self.blocks(cand)
        states = blocks.states(walk, N)
        configs = {s: blocks.chain.config(s, 0) for s in set(states)}  # at most three distinct states
        return tuple(
            configs[s] if not configs[s].active else replace(configs[s], offset=n) for n, s in enumerate(states)
        )

    def _result(
        self, cand: _Candidate, walk: Walk | None, budget: int | None, feasible: bool, floor: int, log: list[str]
    ) -> PlanResult:
        workers = self._workers(cand, walk)
        plan = self._plan(cand.model, workers, budget)
        rate, mem = adaptation_rate(self.profile, plan), memory_bytes(self.profile, plan)
        if walk is not None:
            expected = self.blocks(cand).totals(walk, cand.num_workers)[1]
            assert mem == expected, f"(F4) of the plan {mem} differs from the search's total {expected}"
            chain = self.blocks(cand).chain
            steps = {"S2": 0, "S3": 0, "S4": 0}
            for state, group in Counter(self.blocks(cand).states(walk, cand.num_workers)).items():
                for name, count in chain.step_counts(state).items():
                    steps[name] += count * group
            log.append("steps applied: " + ", ".join(f"{k}×{v}" for k, v in steps.items()))
        model = cand.model
        log.append(
            f"chosen: partition {list(model.partition)} (P={model.num_stages}), c^r={int(model.recompute)}, "
            f"N={cand.num_workers} ({len(plan.active_workers)} active), R={rate:.6g}/s, M={mem} B"
        )
        plan = plan.with_prediction(rate, mem, feasible)
        return PlanResult(plan, feasible, rate, mem, floor, tuple(log[:MAX_LOG_LINES]))

    def _plan(self, model: StageModel, workers: tuple[WorkerConfig, ...], budget: int | None) -> Plan:
        return Plan(
            strategy="ferret",
            partition=model.partition,
            workers=workers,
            placement=default_placement(len(workers), model.num_stages, self.num_devices),
            arrival_interval_s=self.arrival_interval_s,
            decay_per_s=self.decay_per_s,
            budget_bytes=budget,
            value_per_datum=self.value_per_datum,
        )

    def _infeasible(self, budget: int, floor: int) -> PlanResult:
        """The plan at the smallest footprint reached: one worker, one version per stage."""
        cand = min(self.candidates, key=lambda c: (c.model.min_worker_bytes, c.order))
        P = cand.model.num_stages
        saved = WorkerConfig(0, cand.model.recompute, (1,) * P, tuple(P - 1 - j for j in range(P)))
        removed = [WorkerConfig(REMOVED, w.recompute, w.accumulation, w.omission) for w in [saved]]
        workers = (saved, *removed * (cand.num_workers - 1))
        plan = self._plan(cand.model, workers, budget)
        rate, mem = adaptation_rate(self.profile, plan), memory_bytes(self.profile, plan)
        assert mem == floor, f"smallest footprint {floor} but its plan has {mem}"
        log = [
            self._header(),
            f"budget {_fmt_budget(budget)} is below the smallest footprint reached, {floor} B",
        ]
        plan = plan.with_prediction(rate, mem, False)
        return PlanResult(plan, False, rate, mem, floor, tuple(log))


def _fmt_budget(budget: int | None) -> str:
    return "unconstrained" if budget is None else f"{budget} B"


# -------------------------------------------------------------------- the contract's functions
def itersearch(
    profile: ModelProfile,
    partition: Sequence[int],
    arrival_interval_s: float,
    budget_bytes: int | None,
    recompute: bool,
    decay_per_s: float = 1.0,
    value_per_datum: float = 1.0,
    num_devices: int | None = None,
) -> PlanResult:
    """Alg. 2's `itersearch` for one partition and one recomputation setting."""
    planner = FerretPlanner(
        profile, arrival_interval_s, decay_per_s, value_per_datum, [partition], (recompute,), num_devices
    )
    return planner.plan(budget_bytes)


def search(
    profile: ModelProfile,
    partition: Sequence[int],
    arrival_interval_s: float,
    budget_bytes: int | None,
    decay_per_s: float = 1.0,
    value_per_datum: float = 1.0,
    num_devices: int | None = None,
) -> PlanResult:
    """Alg. 2's `search`: the better of `itersearch` without and with recomputation (S1)."""
    planner = FerretPlanner(
        profile, arrival_interval_s, decay_per_s, value_per_datum, [partition], num_devices=num_devices
    )
    return planner.plan(budget_bytes)


def plan_ferret(
    profile: ModelProfile,
    arrival_interval_s: float,
    decay_per_s: float = 1.0,
    budget_bytes: int | None = None,
    value_per_datum: float = 1.0,
    num_devices: int | None = None,
) -> PlanResult:
    """Alg. 3: the best (partition, configuration) for the budget, or an infeasible result."""
    return FerretPlanner(profile, arrival_interval_s, decay_per_s, value_per_datum, num_devices=num_devices).plan(
        budget_bytes
    )


def minimal_budget(
    profile: ModelProfile, arrival_interval_s: float, decay_per_s: float = 1.0, value_per_datum: float = 1.0
) -> int:
    """Ferret M−: the smallest budget Alg. 3 can satisfy."""
    return FerretPlanner(profile, arrival_interval_s, decay_per_s, value_per_datum).min_memory_bytes()
