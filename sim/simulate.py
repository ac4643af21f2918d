"""`simulate(plan, profile, ...)`: run the twin on a stream and measure it.

One seed drives everything random in a run: the arrival process gets `seed` itself (so a
stream can be reproduced on its own), jitter and random mini-batch selection get children of
`SeedSequence(seed)`. The same inputs give byte-identical traces.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from planner.errors import FerretError
from planner.limits import check_work
from planner.plan import Plan
from planner.profile import ModelProfile
from sim.arrivals import ArrivalProcess, FixedArrivals
from sim.config import SimConfig
from sim.costs import OpCosts, ProfileCosts, stage_bytes
from sim.engine import Engine
from sim.result import SimResult, stream_horizon
from sim.strategies import get_strategy
from sim.trace import NullTrace, TraceSink


def resolve_placement(plan: Plan, config: SimConfig, single_device: bool) -> tuple[tuple[int, ...], ...]:
    """Device of each (worker, stage): the plan's, one each (`exclusive_devices`), or all on 0."""
    P = plan.num_stages
    if single_device:
        return tuple((0,) * P for _ in plan.workers)
    if config.exclusive_devices:
        return tuple(tuple(n * P + j for j in range(P)) for n in range(plan.num_workers))
    return plan.placement


def ops_per_datum(num_stages: int) -> int:
    """An upper estimate of the ops one datum costs the twin (or a replay) on `num_stages`
    stages: arrive, forward, backward, recompute and update at each stage, a send and a
    receive each way between stages."""
    return 5 * num_stages + 4 * (num_stages - 1) + 2


def check_jitter_source(config: SimConfig, jitter_sequence: Sequence[float]) -> None:
    """`empirical` jitter draws from a cost model's measured factors: refuse it without them, and
    blocks of factors (`jitter_block` > 1) for any other jitter model."""
    if config.jitter_block > 1 and config.jitter != "empirical":
        raise FerretError(
            f"jitter_block {config.jitter_block} draws measured factors in blocks, which only jitter 'empirical' "
            f"has (jitter is '{config.jitter}')"
        )
    if config.jitter == "empirical" and not jitter_sequence:
        raise FerretError(
            "jitter 'empirical' draws from measured op-time factors, and this cost model has none: give the "
            "costs.json `ferret calibrate` wrote beside its sim_config.json (--costs), or --jitter SIGMA for a "
            "log-normal"
        )


def simulate(
    plan: Plan,
    profile: ModelProfile,
    samples: int,
    arrivals: ArrivalProcess | None = None,
    seed: int = 0,
    config: SimConfig | None = None,
    trace: TraceSink | None = None,
    costs: OpCosts | None = None,
) -> SimResult:
    """Simulate `samples` arrivals through `plan`; stream the schedule into `trace` if given.

    `costs` is the cost model (`sim.costs.OpCosts`); by default `ProfileCosts` of `profile` and
    `config` (its `time_scale`, `op_overhead_s`, `update_s` and link fields). A given `costs`
    replaces those fields: it is the whole timing model but contention and jitter.
    """
    config = SimConfig() if config is None else config
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 1:
        raise FerretError(f"number of samples must be a positive integer, got {samples!r}")
    plan.validate(profile.num_layers)
    check_work("max_events", int(samples) * ops_per_datum(plan.num_stages), f"simulating {samples} samples", "ops")
    strategy = get_strategy(plan.strategy)
    if arrivals is None:
        arrivals = FixedArrivals(plan.arrival_interval_s)
    times = np.asarray(arrivals.times(int(samples), seed), dtype=np.float64)
    placement = resolve_placement(plan, config, strategy.single_device)
    sink = NullTrace() if trace is None else trace
    if costs is None:
        costs = ProfileCosts.from_profiles((profile,), plan.partition, config)
    check_jitter_source(config, costs.jitter_sequence)
    engine = Engine(plan, costs, stage_bytes(profile, plan), config, strategy, placement, times, seed, sink)

    start = time.perf_counter()
    engine.run()
    wall = time.perf_counter() - start

    makespan = float(engine.now)
    ledger = engine.ledger
    t_line, bytes_line, device_lines = ledger.timeline()
    util = tuple(dev.busy_s / (dev.concurrency * makespan) if makespan > 0 else 0.0 for dev in engine.devices)
    predicted = None if plan.predicted is None else plan.predicted.to_json()
    return SimResult(
        strategy=plan.strategy,
        samples=int(samples),
        horizon_s=stream_horizon(times, plan.arrival_interval_s),
        makespan_s=makespan,
        decay_per_s=plan.decay_per_s,
        value_per_datum=plan.value_per_datum,
        stage_weights=np.asarray(engine.sizes.value_shares),
        arrival_s=times,
        update_s=np.frombuffer(memoryview(engine.update_t), dtype=np.float64).reshape(len(times), plan.num_stages),
        dropped=engine.dropped,
        peak_memory_bytes=ledger.total_peak,
        peak_memory_per_device=tuple(ledger.peak),
        baseline_memory_bytes=engine.baseline,
        final_memory_bytes=ledger.total,
        memory_timeline_s=t_line,
        memory_timeline_bytes=bytes_line,
        memory_timeline_per_device=device_lines,
        staleness_histogram=engine.staleness_histogram(),
        utilisation=util,
        events=engine.rows,
        ops=engine.ops,
        wall_s=wall,
        predicted=predicted,
    )
