"""Slow, literal reference implementations the fast planner is checked against.

`literal_trajectory` runs Alg. 2's global greedy over all N workers exactly as SPEC §4.1
words it, evaluating every candidate step as the difference of the worker's recomputed
(F3)/(F4) terms, until no step is left. `literal_choice` then applies a budget.
"""

from __future__ import annotations

import math
from dataclasses import replace

from planner.closed_form import worker_memory, worker_rate, worker_stage_rates
from planner.plan import REMOVED, Plan, WorkerConfig, default_placement
from planner.profile import ModelProfile


def s2_increment(num_stages: int, stage: int, accumulation: int) -> int | None:
    """SPEC's Δ for S2, or None when it is +∞ (S2 not applicable)."""
    K = num_stages - stage - 1
    m = -(-K // accumulation)
    if m - 1 <= 0:
        return None
    return -(-K // (m - 1)) - accumulation


def worker_steps(plan: Plan, n: int, allow_removal: bool) -> list[tuple[int, int, WorkerConfig]]:
    """Every applicable step of worker n as (stage, kind, new config); S4 has stage P."""
    w = plan.workers[n]
    P = plan.num_stages
    out = []
    for j in range(P):
        if w.omission[j] != 0:
            continue
        delta = s2_increment(P, j, w.accumulation[j])
        acc, omit = list(w.accumulation), list(w.omission)
        if delta is not None:
            acc[j] += delta
            out.append((j, 2, replace(w, accumulation=tuple(acc))))
        elif j < P - 1:
            acc[j], omit[j] = 1, P - 1 - j
            out.append((j, 3, replace(w, accumulation=tuple(acc), omission=tuple(omit))))
    if allow_removal and all(w.omission[j] != 0 for j in range(P - 1)):
        out.append((P, 4, replace(w, offset=REMOVED)))
    return out


def ratio(saved: float, lost: float) -> float:
    if lost > 0:
        return saved / lost
    return math.inf if (saved > 0 or lost < 0) else 0.0


def _rate(profile, plan, w):
    return worker_rate(profile, plan, w) if w.active else 0.0


def _lost(profile, plan, before, after) -> float:
    """Rate lost by a step, stage by stage: a total-minus-total difference would drown the
    loss of a heavily discounted stage in the rounding of the others."""
    if not after.active:
        return _rate(profile, plan, before)
    diff = worker_stage_rates(profile, plan, before) - worker_stage_rates(profile, plan, after)
    return math.fsum(diff.tolist())


def _mem(profile, plan, w):
    return worker_memory(profile, plan, w) if w.active else 0


def literal_trajectory(profile: ModelProfile, plan: Plan) -> list[tuple[float, int, Plan]]:
    """All states the global greedy visits from `plan` (with no technique applied) onwards.

    Per-worker values are memoised by configuration (workers share states); the loop itself
    is the literal one: every step scans every active worker and every applicable step.
    """
    memo: dict = {}

    def norm(w):
        return (w.active, w.recompute, w.accumulation, w.omission)

    def rate(w):
        key = ("r", norm(w))
        if key not in memo:
            memo[key] = _rate(profile, plan, w)
        return memo[key]

    def mem(w):
        key = ("m", norm(w))
        if key not in memo:
            memo[key] = _mem(profile, plan, w)
        return memo[key]

    def lost(w, new):
        key = ("l", norm(w), norm(new))
        if key not in memo:
            memo[key] = _lost(profile, plan, w, new)
        return memo[key]

    def candidates(plan, n, allow_removal):
        """(-ratio, stage, kind, new config) of worker n's steps; the same for equal configs."""
        w = plan.workers[n]
        key = ("c", norm(w), allow_removal)
        if key not in memo:
            memo[key] = [
                (-ratio(mem(w) - mem(new), lost(w, new)), stage, kind, new)
                for stage, kind, new in worker_steps(plan, n, allow_removal)
            ]
        return memo[key]

    out = []
    while True:
        out.append((sum(rate(w) for w in plan.workers), sum(mem(w) for w in plan.workers), plan))
        active = len(plan.active_workers)
        best = None
        for n in plan.active_workers:
            for neg_ratio, stage, kind, new in candidates(plan, n, active > 1):
                key = (neg_ratio, n, stage, kind)
                if best is None or key < best[0]:
                    best = (key, n, new)
        if best is None:
            return out
        _, n, new = best
        workers = list(plan.workers)
        workers[n] = replace(new, offset=REMOVED if not new.active else plan.workers[n].offset)
        plan = replace(plan, workers=tuple(workers))


def literal_choice(trajectory, budget: int | None, slack: float = 1e-9):
    """First state within budget; then the earliest state from there whose rate is within
    `slack` of the best rate among it and all later states."""
    first = 0 if budget is None else next((i for i, (_, m, _) in enumerate(trajectory) if m <= budget), None)
    if first is None:
        return None
    peak = max(r for r, _, _ in trajectory[first:])
    return next(t for t in trajectory[first:] if t[0] >= peak * (1 - slack))


def initial_plan(partition, num_workers: int, recompute: bool, td: float, decay: float, value: float = 1.0) -> Plan:
    P = len(partition) - 1
    return Plan(
        strategy="ferret",
        partition=tuple(partition),
        workers=tuple(WorkerConfig.default(n, P, recompute) for n in range(num_workers)),
        placement=default_placement(num_workers, P),
        arrival_interval_s=td,
        decay_per_s=decay,
        value_per_datum=value,
    )
