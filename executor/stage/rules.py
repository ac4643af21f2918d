"""Per-(worker, stage) rules read from a `Plan`: accumulation, omission, recomputation.

Omission (SPEC §3.2 Decision) is `planner.omission`'s rule: datum `k` is back-propagated
through stage `j` iff `k % backward_every[j] == 0`, and the executor *asks* stage `j` for it
iff the stage above runs it (`backward_every[j + 1]`, 1 at the last stage).
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.omission import backward_every
from planner.plan import Plan


@dataclass(frozen=True)
class WorkerRule:
    """How one stage treats the data of one worker."""

    active: bool
    recompute: bool
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
        every = (*backward_every(worker.omission), 1)
        rules.append(
            WorkerRule(
                active=worker.active,
                recompute=worker.recompute,
                accumulation=worker.accumulation[stage],
                backward_every=every[stage],
                asked_every=every[stage + 1],
            )
        )
    return tuple(rules)
