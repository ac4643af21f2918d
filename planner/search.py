"""Ferret's bi-level search (SPEC §4): Alg. 2 (`itersearch`, `search`) inside Alg. 3 (`plan_ferret`).

`FerretPlanner` holds everything that does not depend on the budget — the candidate
partitions, their stage constants, the worker envelopes of `planner.bounds` and, built on
demand, one worker chain per (partition, c^r) — so a budget sweep pays for them once.

For one budget the (partition, c^r) pairs are searched best-first: a pair whose
no-technique plan fits has an exact value; every other one is queued by its envelope bound
and, when its turn comes, its chain is built S3 step by S3 step, stopping as soon as the
part built shows it cannot beat the best value found (it resumes there for a later budget).
The search stops when the best value beats every bound left, which gives the same result
as building every chain (`prune=False` does that, for tests).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from planner.bounds import BOUND_SLACK, WorkerEnvelope
from planner.closed_form import adaptation_rate, ceil_ratio, memory_bytes
from planner.errors import ValidationError
from planner.partition import candidate_partitions, num_caps
from planner.plan import REMOVED, Plan, WorkerConfig, default_placement
from planner.profile import ModelProfile
from planner.quantities import MAX_WORKERS
from planner.stream import check_stream
from planner.walk import Blocks, Walk, best_walk, best_walk_total
from planner.worker_chain import ChainBuilder, StageModel, build_tails, stage_models

MAX_LOG_LINES = 40
BATCH_FIRST, BATCH_GROWTH, BATCH_MAX = 1, 8, 64  # candidates built together: 1, 8, 64, 64, ...


@dataclass(frozen=True)
class PlanResult:
    """What a strategy returns for one budget: the plan with its (F3) rate (data/s) and (F4) bytes.

    `feasible` is False when no plan fits; `plan` is then the one at the smallest footprint reached,
    `min_memory_bytes`, which names the infeasibility. `log` is the search's human-readable trail.
    """

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
    builder: ChainBuilder | None = field(default=None, repr=False)  # a chain being built


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
        models = stage_models(profile, self.partitions, tuple(recompute), decay_per_s, value_per_datum)
        # Decision (docs/planner.md §2): S1 keeps N = ⌈(tf + tb)/td⌉ instead of adding
        # workers for the longer cycle; (F3) would otherwise reward recomputation.
        self.candidates = [_Candidate(n, m, ceil_ratio(m.tf + m.tb, arrival_interval_s)) for n, m in enumerate(models)]
        most = max((c.num_workers for c in self.candidates), default=0)
        if most > MAX_WORKERS:  # every plan of that candidate would fail `Plan.validate`: say so up front
            raise ValidationError(
                f"planning for an arrival every {arrival_interval_s:.3g} s needs {most} workers, "
                f"more than the {MAX_WORKERS} ferret runs"
            )
        self.min_bytes = np.array([m.min_worker_bytes for m in models], dtype=np.int64)
        # The unconstrained plan of each candidate: N workers, no technique (Python ints: exact).
        self.exact_bytes = np.array([c.num_workers * c.model.no_technique_bytes for c in self.candidates], dtype=object)
        self.exact_rates = np.array([c.num_workers * c.model.rate0 for c in self.candidates])
        self._envelope: WorkerEnvelope | None = None

    # ---------------------------------------------------------------- budget-independent
    def blocks(self, cand: _Candidate) -> Blocks:
        """The candidate's whole chain, split into blocks (built once, kept for later budgets)."""
        if cand.blocks is None:
            cand.blocks = Blocks((cand.builder or ChainBuilder(cand.model)).chain())
            cand.builder = None
        return cand.blocks

    def _beaten_while_building(self, cands: list[_Candidate], budget: int, best: tuple[float, int]) -> list[bool]:
        """Build the candidates' chains, stopping each (True) once the part built proves it
        cannot beat `best`; a stopped chain resumes where it stopped next time.

        Each chain's S2 run (and any S3 step among it) is built alone, checked S3 step by S3
        step; the tails — S3 steps only, most of the work — are built together in lock-step
        (`worker_chain.build_tails`), a row stopping as soon as its bound fails.
        """
        beaten = [False] * len(cands)
        tails: list[int] = []
        builders: list[ChainBuilder] = []
        for n, cand in enumerate(cands):
            if cand.blocks is not None:
                continue
            builder = cand.builder = cand.builder or ChainBuilder(cand.model)
            while not builder.done and not builder.in_tail:
                bound, built = builder.later_bound(budget, cand.num_workers, best[0])
                if (bound * (1 + BOUND_SLACK), -cand.order) <= best:
                    beaten[n] = True
                    break
                if (built, -cand.order) > best:  # the states built already rule pruning out
                    builder.chain()
                    break
                builder.advance()
            if not beaten[n] and not builder.done:
                tails.append(n)
                builders.append(builder)
        if tails:
            orders = np.array([cands[n].order for n in tails])
            workers = np.array([cands[n].num_workers for n in tails])
            kmax = np.minimum(workers, budget // np.maximum(self.min_bytes[orders], 1))

            def stop(rows: np.ndarray, memory: np.ndarray, upper: np.ndarray) -> np.ndarray:
                bound = kmax[rows] * upper * (1 + BOUND_SLACK)
                return (bound < best[0]) | ((bound == best[0]) & (-orders[rows] <= best[1]))

            # A row with a state built within the budget builds on (the bound above holds only
            # for states still to come).
            done = build_tails(builders, beaten=stop, safe_memory=budget)
            for n, finished in zip(tails, done, strict=True):
                beaten[n] = not finished
        return beaten

    def envelope(self) -> WorkerEnvelope:
        if self._envelope is None:
            self._envelope = WorkerEnvelope.of(
                [c.model for c in self.candidates], [c.num_workers for c in self.candidates]
            )
        return self._envelope

    def min_memory_bytes(self) -> int:
        """The smallest footprint any plan of this search reaches (Ferret M−)."""
        return int(self.min_bytes.min())

    def max_memory_bytes(self) -> int:
        """The footprint of the unconstrained best plan (Ferret M+)."""
        return self.plan(None).memory_bytes

    # ---------------------------------------------------------------- one budget
    def plan(self, budget_bytes: int | None, prune: bool = True) -> PlanResult:
        """Alg. 3 for one budget; `prune=False` builds every chain (same result, for tests)."""
        if budget_bytes is not None and budget_bytes <= 0:
            raise ValidationError(f"budget must be a positive number of bytes or None, got {budget_bytes}")
        B = budget_bytes
        floor = self.min_memory_bytes()
        if B is not None and floor > B:
            return self._infeasible(B, floor)
        fits = np.ones(len(self.candidates), dtype=bool) if B is None else self.min_bytes <= B
        exact = fits if B is None else fits & (self.exact_bytes <= B).astype(bool)
        # The best (value, -order) so far; candidates whose no-technique plan fits are exact.
        best: tuple[float, int] = (-np.inf, 1)
        walks: dict[int, Walk | None] = {}
        for order in np.flatnonzero(exact).tolist():
            best = max(best, (float(self.exact_rates[order]), -order))
            walks[order] = None
        searched, pruned = int(exact.sum()), 0
        rest = np.flatnonzero(fits & ~exact)
        if len(rest):
            assert B is not None
            bounds = self.envelope().bounds(rest, B) * (1 + BOUND_SLACK)
            queue = list(zip((-bounds).tolist(), rest.tolist(), strict=True))
            heapq.heapify(queue)
            size = BATCH_FIRST
            while queue:
                # The next candidates whose bounds can still win, built together; the batch
                # grows as the best found settles (the first ones usually set it).
                batch: list[_Candidate] = []
                batch_bounds: list[float] = []
                while queue and len(batch) < size:
                    if prune and (-queue[0][0], -queue[0][1]) <= best:
                        pruned += len(queue)  # every bound left is at most this one
                        queue = []
                        break
                    bound, n = heapq.heappop(queue)
                    batch.append(self.candidates[n])
                    batch_bounds.append(-bound)
                size = min(size * BATCH_GROWTH, BATCH_MAX)
                beaten = self._beaten_while_building(batch, B, best) if prune else [False] * len(batch)
                for cand, bound, lost in zip(batch, batch_bounds, beaten, strict=True):
                    # A candidate of the batch may be beaten by one before it: no walk then.
                    if lost or (prune and (bound, -cand.order) <= best):
                        pruned += 1
                        continue
                    found = best_walk_total(self.blocks(cand), cand.num_workers, B)
                    assert found is not None, "a candidate whose one-version footprint fits must have a fitting walk"
                    walks[cand.order], rate = found
                    best = max(best, (rate, -cand.order))
                    searched += 1
        order = -best[1]
        log = [
            self._header(),
            f"budget {_fmt_budget(B)}: searched {searched} (partition, c^r) pairs, skipped {pruned} by rate bounds",
        ]
        return self._result(self.candidates[order], walks[order], B, True, floor, log)

    def candidate_plans(self, budget_bytes: int | None) -> list[Plan]:
        """Every (partition, c^r)'s own best plan under (F3) within the budget — the plans Alg. 3
        chooses among — in candidate order, leaving out those whose smallest footprint does not
        fit. Another objective ranks them (planner/learning_search.py); no chain is pruned."""
        B = budget_bytes
        out = []
        for cand in self.candidates:
            if B is None or self.exact_bytes[cand.order] <= B:
                walk = None
            elif self.min_bytes[cand.order] <= B:
                walk = best_walk(self.blocks(cand), cand.num_workers, B)
                assert walk is not None, "a candidate whose one-version footprint fits must have a fitting walk"
            else:
                continue
            out.append(self._plan(cand.model, self._workers(cand, walk), B))
        return out

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
