"""What-if sweeps: plan every (strategy, budget, interval) with the closed forms, simulate each.

Each point is one job. All points are planned first, in this process, with
`planner.strategies.make_plans` (the budgets of one strategy and interval share a planner), or
get a sequential learner's plan for the 1-Skip / B-Skip baselines; then each point runs the twin
on a stream without keeping its trace, in parallel worker processes. The table has one row per
point: the closed form's prediction beside what the twin measured.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import Any

from analysis.pareto import non_dominated
from planner.learning import BUILTIN, LearningModel, learning_rate
from planner.limits import WorkLimits, set_limits
from planner.plan import Plan
from planner.profile import ModelProfile
from sim.arrivals import make_arrivals
from sim.config import SimConfig
from sim.fitted_costs import LayerCosts
from sim.simulate import simulate
from sim.strategies import SEQUENTIAL_STRATEGIES, get_strategy, sequential_plan, sequential_prediction

DEFAULT_STRATEGIES = ("ferret", "pipedream", "pipedream-2bw", "gpipe", "1f1b")
# Ferret planned for learning (`ferret plan --objective learning`), a strategy of its own here so
# that one sweep sets it beside the paper's objective.
FERRET_LEARNING = "ferret-learning"


def planner_strategy(name: str) -> str:
    """The registered strategy a sweep's name plans with (`ferret-learning` is Ferret's)."""
    return "ferret" if name == FERRET_LEARNING else name


def is_sequential(name: str) -> bool:
    """Whether a sweep's strategy is a sequential learner (1-Skip, B-Skip), not a pipeline."""
    return get_strategy(planner_strategy(name)).name in SEQUENTIAL_STRATEGIES


@dataclass(frozen=True)
class WhatIfJob:
    """One point of a what-if sweep: a strategy, budget (bytes) and arrival interval (s) to plan, then run.

    The stream (samples, arrival family, seed, decay per second) and the twin's `SimConfig` are the
    sweep's; `num_devices` None places one device per (worker, stage).
    """

    strategy: str
    budget_bytes: int
    arrival_interval_s: float
    decay_per_s: float
    samples: int
    arrival: str  # fixed, poisson, bursty (mean gap = the interval)
    seed: int
    config: SimConfig
    baseline_minibatch: int = 8  # mini-batch of the B-Skip baselines
    num_devices: int | None = None  # devices the pipeline plans are placed on (None: one per (worker, stage))
    learning_model: LearningModel = BUILTIN  # scores every pipeline plan; plans ferret-learning
    costs: LayerCosts | None = None  # a calibration's fitted cost model (None: the profile's times)


@dataclass(frozen=True)
class WhatIfRow:
    """One row of the what-if table: a point's closed-form prediction beside what the twin measured.

    Rates are per second, memory in bytes, latencies in seconds; NaN where a value does not exist (no
    closed form, or an infeasible point). `pareto` marks, per interval, the rate/memory front.
    """

    strategy: str
    budget_bytes: int
    arrival_interval_s: float
    feasible: bool
    workers: int  # active workers (0 when infeasible)
    stages: int
    minibatch: int
    predicted_rate: float  # closed form; NaN where none exists
    predicted_memory_bytes: float
    rate: float  # simulated (SPEC §2); NaN when infeasible
    peak_memory_bytes: float
    throughput_per_s: float
    drop_rate: float
    latency_p50_s: float
    latency_p99_s: float
    events: int
    wall_s: float
    learning_score: float = math.nan  # planned: share of Oracle's value the learning score keeps
    mean_staleness: float = math.nan  # simulated: mean over applied gradients
    pareto: bool = False

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class PlannedPoint:
    """A job with its plan and the closed form's prediction."""

    job: WhatIfJob
    plan: Plan
    feasible: bool
    predicted_rate: float  # NaN where no closed form exists
    predicted_memory_bytes: float


def plan_points(jobs: Sequence[WhatIfJob], profile: ModelProfile) -> list[PlannedPoint]:
    """Plan every job, in job order; the budgets of one (strategy, interval, decay) share one
    planner, so a Ferret sweep searches its partitions once rather than once per budget."""
    from planner.strategies import make_plans

    groups: dict[tuple[str, float, float, int | None], list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault((job.strategy, job.arrival_interval_s, job.decay_per_s, job.num_devices), []).append(i)
    points: list[PlannedPoint | None] = [None] * len(jobs)
    for (strategy, interval, decay, devices), members in groups.items():
        if is_sequential(strategy):
            for i in members:
                points[i] = _sequential_point(jobs[i], profile)
            continue
        budgets = [jobs[i].budget_bytes for i in members]
        options: dict[str, Any] = {"num_devices": devices}
        if strategy == FERRET_LEARNING:
            options.update(objective="learning", learning_model=jobs[members[0]].learning_model)
        results = make_plans(planner_strategy(strategy), profile, interval, budgets, decay_per_s=decay, **options)
        for i, result in zip(members, results, strict=True):
            points[i] = PlannedPoint(
                jobs[i], result.plan, result.feasible, float(result.adaptation_rate), float(result.memory_bytes)
            )
    assert all(p is not None for p in points), "every job belongs to exactly one group"
    return points  # type: ignore[return-value]


def _sequential_point(job: WhatIfJob, profile: ModelProfile) -> PlannedPoint:
    minibatch = 1 if get_strategy(job.strategy).name == "1-skip" else job.baseline_minibatch
    plan = sequential_plan(
        profile.num_layers, job.arrival_interval_s, job.strategy, minibatch, job.decay_per_s, 1.0, job.budget_bytes
    )
    rate, memory = sequential_prediction(profile, plan)
    return PlannedPoint(job, plan, memory <= job.budget_bytes, math.nan if rate is None else rate, float(memory))


def simulate_point(point: PlannedPoint, profile: ModelProfile) -> WhatIfRow:
    """Simulate one planned point (a pure function of its inputs: safe in a worker process)."""
    job, plan, nan = point.job, point.plan, math.nan
    predicted = (point.predicted_rate, point.predicted_memory_bytes)
    if not point.feasible:
        return WhatIfRow(
            job.strategy, job.budget_bytes, job.arrival_interval_s, False, 0, plan.num_stages, plan.minibatch,
            *predicted, nan, nan, nan, nan, nan, nan, 0, 0.0,
        )  # fmt: skip
    arrivals = make_arrivals(job.arrival, job.arrival_interval_s)
    costs = None if job.costs is None else job.costs.for_partition(plan.partition)
    sim = simulate(plan, profile, job.samples, arrivals=arrivals, seed=job.seed, config=job.config, costs=costs)
    applied = [(tau, count) for hist in sim.staleness_histogram for tau, count in enumerate(hist)]
    total = sum(count for _, count in applied)
    sequential = is_sequential(job.strategy)
    return WhatIfRow(
        strategy=job.strategy,
        budget_bytes=job.budget_bytes,
        arrival_interval_s=job.arrival_interval_s,
        feasible=True,
        workers=len(plan.active_workers),
        stages=plan.num_stages,
        minibatch=plan.minibatch,
        predicted_rate=predicted[0],
        predicted_memory_bytes=predicted[1],
        rate=sim.adaptation_rate,
        peak_memory_bytes=float(sim.peak_memory_bytes),
        throughput_per_s=sim.throughput_per_s,
        drop_rate=sim.drop_rate,
        latency_p50_s=sim.latency_quantile(0.5),
        latency_p99_s=sim.latency_quantile(0.99),
        events=sim.events,
        wall_s=sim.wall_s,
        learning_score=nan if sequential else learning_rate(profile, plan, job.learning_model) * job.arrival_interval_s,
        mean_staleness=sum(tau * count for tau, count in applied) / total if total else nan,
    )


def run_job(job: WhatIfJob, profile: ModelProfile) -> WhatIfRow:
    """Plan and simulate one point."""
    return simulate_point(plan_points([job], profile)[0], profile)


def _simulate_packed(args: tuple[PlannedPoint, ModelProfile]) -> WhatIfRow:
    return simulate_point(*args)


def run_sweep(
    jobs: Sequence[WhatIfJob],
    profile: ModelProfile,
    workers: int = 1,
    progress: Callable[[Iterable[WhatIfRow], int], Iterable[WhatIfRow]] | None = None,
    limits: WorkLimits | None = None,
) -> list[WhatIfRow]:
    """Plan every job here (sharing planners), simulate each distinct plan once — budgets that
    plan the same pipeline share its run — in `workers` processes when > 1, then mark the
    Pareto front. Rows come in job order. The worker processes work under `limits` (the
    caller's); an interruption cancels the points not yet started."""
    points = plan_points(jobs, profile)
    keys = [_run_key(point) for point in points]
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    packed = [(points[i], profile) for i in first.values()]
    if workers <= 1 or len(packed) <= 1:
        results: Iterable[WhatIfRow] = map(_simulate_packed, packed)
        runs = list(progress(results, len(packed)) if progress else results)
    else:
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(packed)), initializer=set_limits, initargs=(limits or WorkLimits(),)
        )
        try:
            results = pool.map(_simulate_packed, packed)
            runs = list(progress(results, len(packed)) if progress else results)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    by_key = dict(zip(first, runs, strict=True))
    return mark_pareto([_for_point(by_key[key], point) for key, point in zip(keys, points, strict=True)])


def _run_key(point: PlannedPoint) -> str:
    """What a simulation depends on: the plan but its budget and prediction, and the stream."""
    import json

    if not point.feasible:  # not simulated: its own row
        return f"infeasible {id(point)}"
    plan = {k: v for k, v in point.plan.to_json().items() if k not in ("budget_bytes", "predicted", "feasible")}
    job = point.job
    stream = (job.samples, job.arrival, job.arrival_interval_s, job.seed, job.config.to_json())
    return json.dumps([job.strategy, plan, stream], default=str)


def _for_point(run: WhatIfRow, point: PlannedPoint) -> WhatIfRow:
    """A shared run's row, with this point's budget and closed-form prediction."""
    import dataclasses

    return dataclasses.replace(
        run,
        budget_bytes=point.job.budget_bytes,
        predicted_rate=point.predicted_rate,
        predicted_memory_bytes=point.predicted_memory_bytes,
    )


def auto_budgets(
    profile: ModelProfile, strategies: Sequence[str], arrival_interval_s: float, decay_per_s: float, count: int
) -> list[int]:
    """`count` budgets spaced geometrically over the interesting range: from the smallest footprint
    any of the pipeline strategies reaches (below it nothing is feasible) to 1.25× Ferret's
    unconstrained footprint (above it Ferret gains nothing)."""
    import numpy as np

    from planner.strategies import make_plan, minimal_budget

    pipelines = [planner_strategy(s) for s in strategies if not is_sequential(s)] or ["ferret"]
    low = min(minimal_budget(profile, arrival_interval_s, decay_per_s, strategy=s) for s in pipelines)
    high = max(low, int(1.25 * make_plan("ferret", profile, arrival_interval_s, decay_per_s).memory_bytes))
    if count == 1 or high == low:
        return [high]
    return sorted({int(b) for b in np.geomspace(low, high, count)})


def mark_pareto(rows: Sequence[WhatIfRow]) -> list[WhatIfRow]:
    """Flag, per arrival interval, the feasible points no other point beats on both R and memory."""
    front = [False] * len(rows)
    for interval in {r.arrival_interval_s for r in rows}:
        mine = [k for k, r in enumerate(rows) if r.feasible and r.arrival_interval_s == interval]
        for k, on_front in zip(
            mine, non_dominated([(rows[k].peak_memory_bytes, rows[k].rate) for k in mine]), strict=True
        ):
            front[k] = on_front
    return [WhatIfRow(**{**asdict(row), "pareto": on_front}) for row, on_front in zip(rows, front, strict=True)]


def tqdm_progress(enabled: bool) -> Callable[[Iterable[WhatIfRow], int], Iterable[WhatIfRow]] | None:
    """A tqdm bar on a terminal, nothing under CI or when output is piped."""
    if not enabled or os.environ.get("CI") or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda rows, total: tqdm(rows, total=total, desc="whatif", unit="point", file=sys.stderr)


def write_csv(path: os.PathLike[str] | str, rows: Sequence[WhatIfRow]) -> None:
    from planner.fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(",".join(WhatIfRow.columns()) + "\n")
        for row in rows:
            f.write(",".join(_cell(getattr(row, name)) for name in WhatIfRow.columns()) + "\n")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def sweep_summary(rows: Sequence[WhatIfRow]) -> dict[str, object]:
    """Per strategy: feasible points and the best simulated R; plus the Pareto front."""
    per_strategy: dict[str, object] = {}
    for name in dict.fromkeys(r.strategy for r in rows):
        mine = [r for r in rows if r.strategy == name]
        feasible = [r for r in mine if r.feasible]
        best = max(feasible, key=lambda r: r.rate, default=None)
        per_strategy[name] = {
            "points": len(mine),
            "feasible": len(feasible),
            "best_rate": None if best is None else best.rate,
            "best_at_budget_bytes": None if best is None else best.budget_bytes,
            "min_feasible_budget_bytes": min((r.budget_bytes for r in feasible), default=None),
        }
    return {
        "points": len(rows),
        "strategies": per_strategy,
        "pareto": [
            {
                "strategy": r.strategy,
                "budget_bytes": r.budget_bytes,
                "rate": r.rate,
                "peak_memory_bytes": r.peak_memory_bytes,
            }
            for r in rows
            if r.pareto
        ],
        "events": sum(r.events for r in rows),
        "sim_wall_s": sum(r.wall_s for r in rows),
    }
