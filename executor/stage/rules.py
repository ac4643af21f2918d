"""Per-(worker, stage) rules read from a `Plan`: accumulation, omission, recomputation, and
which weights a backward differentiates (stashed or latest).

Omission (SPEC §3.2 Decision): stage `j` runs the backward of worker-datum `k` only if
`k mod (c^o_j + 1) == 0`, and a datum skipped at `j` skips every stage below. So datum `k`
is back-propagated through stage `j` iff `k` is a multiple of
`LCM({c^o_m + 1 : m ∈ [j, P−1]})`, and the executor *asks* stage `j` for it iff `k` is a
multiple of the same LCM over the stages above (`m ∈ [j+1, P−1]`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.plan import Plan


@dataclass(frozen=True)
class WorkerRule:
    """How one stage treats the data of one worker."""

    active: bool
    recompute: bool
    latest: bool  # backwards differentiate the stage's latest weights, recomputed from the kept input
    accumulation: int  # c^a: backward passes per optimizer step
    backward_every: int  # datum k is back-propagated here iff k % backward_every == 0
    asked_every: int  # the executor calls backward here iff k % asked_every == 0

    def runs_backward(self, k: int) -> bool:
        return k % self.backward_every == 0

    def is_asked(self, k: int) -> bool:
        return k % self.asked_every == 0


def stage_rules(plan: Plan, stage: int) -> tuple[WorkerRule, ...]:
    """The rule of every worker of `plan` (removed ones included, inactive) at `stage`."""
    if not 0 <= stage < plan.num_stages:
        raise ValueError(f"stage {stage} is out of range for a plan with {plan.num_stages} stages")
    rules = []
    for worker in plan.workers:
        above = math.lcm(*(worker.omission[m] + 1 for m in range(stage + 1, plan.num_stages)), 1)
        rules.append(
            WorkerRule(
                active=worker.active,
                recompute=worker.recompute,
                latest=worker.latest,
                accumulation=worker.accumulation[stage],
                backward_every=math.lcm(above, worker.omission[stage] + 1),
                asked_every=above,
            )
        )
    return tuple(rules)
