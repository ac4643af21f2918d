"""Hypothesis strategies: random profiles, plans, simulator models and streams (kept small)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import strategies as st

from planner.plan import REMOVED, Plan, WorkerConfig, default_placement
from planner.profile import LayerProfile, ModelProfile
from sim import SimConfig, sequential_plan
from sim.algorithm_passes import NO_PASSES, AlgorithmPasses
from sim.arrivals import ArrivalProcess, FixedArrivals, PoissonArrivals
from sim.strategies import SEQUENTIAL_STRATEGIES, SIM_STRATEGIES

# An algorithm's passes (sim/algorithm_passes.py): none, LwF's from datum 2, MIR's, MAS's.
PASSES = (
    NO_PASSES,
    AlgorithmPasses(with_forward=1.0, from_sample=2),
    AlgorithmPasses(before_forwards=2.0, before_backwards=0.5),
    AlgorithmPasses(after_forwards=1.0, after_backwards=1.0),
)
STRATEGY_NAMES = sorted({s.name for s in SIM_STRATEGIES.values()})
ASYNC_NAMES = ("ferret", "pipedream", "pipedream-2bw")


@dataclass(frozen=True)
class Scenario:
    profile: ModelProfile
    plan: Plan
    config: SimConfig
    arrivals: ArrivalProcess
    samples: int
    seed: int


@st.composite
def profiles(draw: st.DrawFn, min_layers: int = 1, max_layers: int = 6) -> ModelProfile:
    n = draw(st.integers(min_layers, max_layers))
    times = st.floats(0.01, 1.0, allow_nan=False)
    layers = tuple(
        LayerProfile(
            f"l{i}",
            draw(times),
            draw(times),
            draw(st.integers(0, 5000)),
            draw(st.integers(0, 3000)),
        )
        for i in range(n)
    )
    return ModelProfile("random", layers, source="synthetic")


@st.composite
def partitions(draw: st.DrawFn, num_layers: int, max_stages: int = 4) -> tuple[int, ...]:
    stages = draw(st.integers(1, min(max_stages, num_layers)))
    if stages == 1:
        return (0, num_layers)
    cuts = draw(st.lists(st.integers(1, num_layers - 1), min_size=stages - 1, max_size=stages - 1, unique=True))
    return (0, *sorted(cuts), num_layers)


@st.composite
def worker_configs(draw: st.DrawFn, count: int, stages: int, techniques: bool = True) -> tuple[WorkerConfig, ...]:
    workers = []
    for n in range(count):
        removed = techniques and count > 1 and n > 0 and draw(st.booleans()) and draw(st.booleans())
        acc = tuple(draw(st.integers(1, 3)) if techniques else 1 for _ in range(stages))
        omit = tuple(draw(st.integers(0, stages - 1 - j)) if techniques else 0 for j in range(stages))
        recompute = techniques and draw(st.booleans())
        workers.append(WorkerConfig(REMOVED if removed else n, recompute, acc, omit))
    return tuple(workers)


@st.composite
def sim_configs(draw: st.DrawFn, contention: bool = True) -> SimConfig:
    jitter = draw(st.sampled_from([0.0, 0.3]))
    return SimConfig(
        concurrency=draw(st.integers(1, 2)) if contention else 1,
        slowdown=draw(st.sampled_from([0.0, 0.5])) if contention else 0.0,
        op_overhead_s=draw(st.sampled_from([0.0, 0.01])),
        update_s=draw(st.sampled_from([0.0, 0.02])),
        link_latency_s=draw(st.sampled_from([0.0, 0.03])),
        link_bandwidth_Bps=draw(st.sampled_from([math.inf, 2e4])),
        jitter="lognormal" if jitter else "none",
        jitter_sigma=jitter,
        input_buffer=draw(st.sampled_from([None, 0, 1, 3])),
        exclusive_devices=draw(st.booleans()) if contention else True,
        transient_memory=draw(st.booleans()),
        optimizer_state_ratio=draw(st.sampled_from([0.0, 2.0])),
        compensation_buffers=draw(st.sampled_from([0, 2])),
        trace_memory=draw(st.booleans()),
        algorithm_passes=draw(st.sampled_from(PASSES)),
    )


@st.composite
def scenarios(draw: st.DrawFn, max_samples: int = 24) -> Scenario:
    profile = draw(profiles())
    strategy = draw(st.sampled_from(STRATEGY_NAMES))
    interval = draw(st.floats(0.05, 1.5))
    decay = draw(st.sampled_from([0.0, 0.3, 1.0]))
    if strategy in SEQUENTIAL_STRATEGIES:
        minibatch = 1 if strategy == "1-skip" else draw(st.integers(1, 3))
        plan = sequential_plan(profile.num_layers, interval, strategy, minibatch=minibatch, decay_per_s=decay)
    else:
        partition = draw(partitions(profile.num_layers))
        stages = len(partition) - 1
        batched = SIM_STRATEGIES[strategy].batched
        count = draw(st.integers(1, 2 if batched else 3))
        workers = draw(worker_configs(count, stages))
        devices = draw(st.integers(1, stages))
        plan = Plan(
            strategy=strategy,
            partition=partition,
            workers=workers,
            placement=default_placement(count, stages, devices),
            arrival_interval_s=interval,
            decay_per_s=decay,
            minibatch=draw(st.integers(1, 4)) if batched else 1,
        ).validate(profile.num_layers)
    config = draw(sim_configs())
    policy = SIM_STRATEGIES[strategy]
    if policy.batched and policy.full_batch and (config.input_buffer or 0) < plan.minibatch - 1:
        config = SimConfig(**{**config.__dict__, "input_buffer": None})
    arrivals: ArrivalProcess = draw(st.sampled_from([FixedArrivals(interval), PoissonArrivals(interval)]))
    return Scenario(profile, plan, config, arrivals, draw(st.integers(1, max_samples)), draw(st.integers(0, 999)))
