"""Exact optimum of (F13) for tiny models, by enumeration: the yardstick for the greedy's gap.

The space is the one Alg. 2 + 3 search: every contiguous partition, `c^r` shared by all workers,
`N = ⌈(tf + tb)/td⌉` workers (docs/planner.md §2), and per worker either removal or, with
`space="all"`, any `1 ≤ c^a_{n,j} ≤ max(1, P-1-j)` with any `0 ≤ c^o_{n,j} ≤ P-1-j` (a larger
accumulation saves no memory and loses rate); with `space="steps"`, only what S2 and S3 can
reach, which separates the greedy's ordering from the limits of its moves. (F3)/(F4) are sums of per-worker terms, so a plan is a multiset of
per-worker options; the optimum is found by enumerating multisets, which is exact and only
feasible for a handful of stages and workers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

from planner.closed_form import ceil_ratio, stage_times, worker_memory, worker_rate
from planner.plan import REMOVED, Plan, WorkerConfig, default_placement
from planner.profile import ModelProfile
from planner.step_tables import s2_ladder

MAX_COMBINATIONS = 2_000_000


@dataclass(frozen=True)
class Optimum:
    """The exact optimum of (F13) that `optimum` found: the plan, its (F3) rate in data/s and (F4) bytes.

    `plan` is None (rate 0, memory 0) when nothing in the space fits the budget.
    """

    plan: Plan | None  # None when nothing fits the budget
    adaptation_rate: float
    memory_bytes: int


def all_partitions(num_layers: int) -> Iterator[tuple[int, ...]]:
    for k in range(num_layers):
        for cuts in itertools.combinations(range(1, num_layers), k):
            yield (0, *cuts, num_layers)


def worker_options(num_stages: int, recompute: bool, space: str = "all") -> list[WorkerConfig]:
    """Every per-worker configuration of the space: "all" (SPEC §1) or "steps" (what S2 and S3
    can reach: an S2 rung with no omission, or S3's `c^a = 1, c^o = P-1-j`)."""
    per_stage = []
    for j in range(num_stages):
        behind = num_stages - 1 - j
        if space == "all":
            per_stage.append([(a, o) for a in range(1, max(1, behind) + 1) for o in range(behind + 1)])
        elif space == "steps":
            rungs = [(a, 0) for a in s2_ladder(behind)[0]]
            per_stage.append(rungs + ([(1, behind)] if behind > 0 else []))
        else:
            raise ValueError(f"unknown configuration space {space!r} (all or steps)")
    return [
        WorkerConfig(0, recompute, tuple(a for a, _ in combo), tuple(o for _, o in combo))
        for combo in itertools.product(*per_stage)
    ]


def _plan(partition: tuple[int, ...], workers: list[WorkerConfig], td: float, decay: float, value: float) -> Plan:
    configs = tuple(WorkerConfig(n if w.offset != REMOVED else REMOVED, w.recompute, w.accumulation, w.omission)
                    for n, w in enumerate(workers))  # fmt: skip
    return Plan("ferret", partition, configs, default_placement(len(configs), len(partition) - 1), td, decay,
                value_per_datum=value)  # fmt: skip


def exhaustive_optimum(
    profile: ModelProfile,
    arrival_interval_s: float,
    budget_bytes: int | None,
    decay_per_s: float = 1.0,
    value_per_datum: float = 1.0,
    partitions: list[tuple[int, ...]] | None = None,
    space: str = "all",
) -> Optimum:
    """The highest (F3) over the space above with (F4) within the budget (ties: first found)."""
    best = Optimum(None, -1.0, 0)
    for part in partitions if partitions is not None else list(all_partitions(profile.num_layers)):
        tf, tb = stage_times(profile, part)
        N = ceil_ratio(tf + tb, arrival_interval_s)
        for recompute in (False, True):
            options = worker_options(len(part) - 1, recompute, space)
            probe = _plan(part, [options[0]], arrival_interval_s, decay_per_s, value_per_datum)
            values = [(worker_rate(profile, probe, w, tf, tb), worker_memory(profile, probe, w)) for w in options]
            removed = len(options)  # index of the "removed" option
            count = _multisets(len(options) + 1, N)
            if count > MAX_COMBINATIONS:
                raise ValueError(f"{count} configurations for partition {part}: too many to enumerate")
            for combo in itertools.combinations_with_replacement(range(len(options) + 1), N):
                if combo[0] == removed:  # sorted, so every worker is removed
                    continue
                mem = sum(values[i][1] for i in combo if i != removed)
                if budget_bytes is not None and mem > budget_bytes:
                    continue
                rate = sum(values[i][0] for i in combo if i != removed)
                if rate > best.adaptation_rate:
                    gone = WorkerConfig(REMOVED, recompute, options[0].accumulation, options[0].omission)
                    workers = [options[i] if i != removed else gone for i in combo]
                    best = Optimum(_plan(part, workers, arrival_interval_s, decay_per_s, value_per_datum), rate, mem)
    return best if best.plan is not None else Optimum(None, 0.0, 0)


def _multisets(kinds: int, size: int) -> int:
    return math.comb(kinds + size - 1, size)
