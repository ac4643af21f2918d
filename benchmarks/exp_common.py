"""What the two experiments share: workloads, the profile and plans, parallel runs, their runs as
`analysis.compare` runs (the tables of `ferret compare`).

Every run is a `ferret run` done through the library (`RunSpec → prepare → run_experiment →
experiment_summary`), so a row of a table is exactly what the CLI would report for it. The
profile is the roofline estimate of the model on a TITAN Xp (the papers' GPU; deterministic,
so every seed and framework sees the same virtual times), at batch 1 and batch 16 so that a
sequential step's fixed cost is fitted (docs/ocl.md); data arrive every `td` = the
slowest layer's forward (Ferret's setting). Pipelines run in the closed forms' regime (every
(worker, stage) on its own device, `exclusive_devices`), the regime the planner plans for.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from analysis.compare import Run, Stat
from executor.compensation import CompensationConfig
from executor.data import load_dataset
from executor.models import build_model
from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.experiment import RunSpec, experiment_summary, prepare, run_experiment
from executor.ocl.frameworks import FrameworkOptions
from executor.ocl.frameworks.pipeline import PipelineOptions
from executor.profiler import roofline_profile
from executor.stage.optim import OptimizerConfig
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.strategies import make_plan, minimal_budget
from sim.config import SimConfig

MODEL = "mnistnet"
DEVICE = "titan-xp"


@dataclass(frozen=True)
class Workload:
    name: str
    dataset: str
    stream: str
    samples: int | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    stream_options: dict[str, Any] = field(default_factory=dict)
    eval_every: int = 100

    def describe(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in {**self.dataset_options, **self.stream_options}.items())
        length = "the training set once" if self.samples is None else f"{self.samples} samples"
        return f"`{self.dataset}`, `{self.stream}` stream ({options or 'defaults'}), {length}"


DIGITS = Workload("digits", "digits", "iid")


def synthetic(name: str, stream: str, samples: int, drift: str = "none", **stream_options: Any) -> Workload:
    options = {"num_classes": 10, "shape": "1,8,8", "train_size": samples, "test_size": 1000, "drift": drift}
    return Workload(name, "synthetic", stream, samples, options, dict(stream_options))


COST_BATCH = 16


def profile_for(workload: Workload, folder: Path) -> Path:
    """The roofline profile of the model at the workload's input shape, as a file every run reads;
    beside it (`batch_profile_path`) the same at batch 16, from which a step's fixed cost is fitted."""
    dataset = load_dataset(workload.dataset, seed=0, **workload.dataset_options)
    model = build_model(MODEL, dataset.input_shape, dataset.num_classes, seed=0)
    path = folder / f"{workload.name}-{MODEL}.json"
    roofline_profile(model, DEVICE).save(path)
    roofline_profile(model, DEVICE, batch_size=COST_BATCH).save(batch_profile_path(path))
    return path


def batch_profile_path(profile_path: Path) -> Path:
    return profile_path.with_name(f"{profile_path.stem}-b{COST_BATCH}.json")


def ferret_budgets(profile: ModelProfile, points: int) -> list[int | None]:
    """M− (the smallest feasible), `points − 2` log-spaced budgets between, and M+ (unconstrained)."""
    td = float(profile.t_fwd.max())
    low = minimal_budget(profile, td)
    high = make_plan("ferret", profile, td).memory_bytes
    inner = [round(low * (high / low) ** (k / (points - 1))) for k in range(1, points - 1)]
    return [low, *inner, None]


def save_plan(profile_path: Path, budget: int | None, folder: Path, strategy: str = "ferret") -> Path:
    profile = ModelProfile.load(profile_path)
    td = float(profile.t_fwd.max())
    result = make_plan(strategy, profile, td, budget_bytes=budget)
    path = folder / f"{strategy}-{budget or 'max'}.json"
    result.plan.save(path)
    return path


@dataclass(frozen=True)
class Job:
    """One run: what the tables call it, and the `RunSpec` fields that make it."""

    label: str
    workload: Workload
    seed: int
    profile: Path
    framework: str = "oracle"
    pipeline: PipelineOptions | None = None
    batch_size: int = 10
    window: int = 50
    tags: dict[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)

    def spec(self) -> RunSpec:
        w = self.workload
        return RunSpec(
            framework=self.framework,
            algorithm=AlgorithmConfig(),
            optimizer=self.optimizer,
            framework_options=FrameworkOptions(batch_size=self.batch_size, window=self.window, pipeline=self.pipeline),
            dataset=w.dataset,
            dataset_options=w.dataset_options,
            stream=w.stream,
            stream_options=w.stream_options,
            model=MODEL,
            samples=w.samples,
            seed=self.seed,
            eval_every=w.eval_every,
            profile_path=str(self.profile),
            batch_profile_paths=(str(batch_profile_path(self.profile)),),
        )


def pipeline(plan: Path, compensation: str = "iter-fisher") -> PipelineOptions:
    return PipelineOptions(
        plan=Plan.load(plan),
        plan_file=plan,
        compensation=CompensationConfig(compensation),
        sim_config=SimConfig(exclusive_devices=True),
    )


def run_job(job: Job) -> dict[str, Any]:
    torch.set_num_threads(1)
    started = time.perf_counter()
    experiment = prepare(job.spec())
    result = run_experiment(experiment)
    summary = experiment_summary(experiment, result, decay_per_s=1.0)
    half = result.samples // 2
    summary["online_accuracy_second_half"] = 100.0 * float(result.correct[half:].mean())
    summary["label"], summary["job_wall_s"] = job.label, time.perf_counter() - started
    summary.update(job.tags)
    return summary


def run_all(jobs: Sequence[Job], workers: int) -> list[dict[str, Any]]:
    if workers <= 1:
        return [run_job(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_job, jobs))


def scratch() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="ferret-exp-")


def as_runs(results: Iterable[dict[str, Any]], *fields: str) -> list[Run]:
    """The summaries as `analysis.compare` runs (the tables' one code): one configuration per
    distinct value of the job's `fields` (label, tags), each named by its job's label."""
    return [Run(r["label"], r, {name: r.get(name) for name in fields}) for r in results]


def ci95(values: Iterable[float | None]) -> str:
    """`mean ± std [lo, hi]`: the learning tables' format (≥ 5 seeds; the 95 % interval of the
    mean, Student's t)."""
    from scipy.stats import t

    stat = Stat.of(values)
    if stat.n < 2:
        return stat.format()
    half = float(t.ppf(0.975, stat.n - 1)) * stat.std / math.sqrt(stat.n)
    return f"{stat.format()} [{stat.mean - half:.2f}, {stat.mean + half:.2f}]"


def kib(nbytes: float) -> str:
    return f"{nbytes / 1024:.0f}"


def jobs_count() -> int:
    return max(1, min(2, os.cpu_count() or 1))
