"""A twin with known parameters whose traces the calibration tests treat as 'measured'.

The true layer times are random (seeded) and differ from the plain profile's, which gives
every layer the same time: calibration must find them from the traces alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from analysis.calibrate import MeasuredRun
from analysis.calibrate.fit import run_passes
from analysis.run_folder import RunFolder
from analysis.trace_table import load_table
from planner.plan import Plan, WorkerConfig, default_placement
from planner.profile import LayerProfile, ModelProfile
from sim import FileTrace, SimConfig, simulate
from sim.arrivals import ArrivalProcess

LAYERS = 6
TRUE_CONFIG = SimConfig(
    concurrency=2,
    slowdown=0.3,
    op_overhead_s=0.004,
    update_s=0.003,
    link_latency_s=0.002,
    link_bandwidth_Bps=2e5,
)


def _sizes(i: int) -> tuple[int, int]:
    return 1000 * (i + 1), 300 + 50 * i


def true_profile(seed: int = 1) -> ModelProfile:
    rng = np.random.default_rng(seed)
    layers = tuple(
        LayerProfile(f"l{i}", float(rng.uniform(0.01, 0.03)), float(rng.uniform(0.02, 0.05)), *_sizes(i))
        for i in range(LAYERS)
    )
    return ModelProfile("known", layers, source="synthetic")


def plain_profile() -> ModelProfile:
    return ModelProfile("known", tuple(LayerProfile(f"l{i}", 0.02, 0.04, *_sizes(i)) for i in range(LAYERS)))


def plan_for(
    partition: tuple[int, ...], workers: int, interval: float, devices: int = 2, recompute: bool = False
) -> Plan:
    P = len(partition) - 1
    configs = tuple(WorkerConfig.default(n, P, recompute=recompute and n == 0) for n in range(workers))
    return Plan("ferret", partition, configs, default_placement(workers, P, devices), interval).validate(LAYERS)


def twin_run(
    folder: Path,
    plan: Plan,
    profile: ModelProfile,
    config: SimConfig,
    samples: int,
    seed: int = 3,
    arrivals: ArrivalProcess | None = None,
) -> MeasuredRun:
    folder.mkdir(parents=True, exist_ok=True)
    with FileTrace(folder / "trace.jsonl") as trace:
        simulate(plan, profile, samples, arrivals=arrivals, seed=seed, config=config, trace=trace)
    run = RunFolder(folder, folder / "trace.jsonl", "twin", plan, None, {}, {"sim_config": config.to_json()})
    return MeasuredRun(run, load_table(run.trace_path), run_passes(run))


# Two partitions that cut the six layers differently, so most layers and the overhead are
# determined; layers 4 and 5 share a stage in both, so only their sum is.
TRAINING = (((0, 2, 4, 6), 3, 0.05, False), ((0, 1, 3, 6), 2, 0.07, True))


def training_runs(root: Path, config: SimConfig = TRUE_CONFIG, samples: int = 600) -> list[MeasuredRun]:
    return [
        twin_run(root / f"train{k}", plan_for(part, n, td, recompute=rec), true_profile(), config, samples)
        for k, (part, n, td, rec) in enumerate(TRAINING)
    ]


def with_jitter(sigma: float) -> SimConfig:
    return dataclasses.replace(TRUE_CONFIG, jitter="lognormal", jitter_sigma=sigma)
