"""Experiment: budgeted OCL (aL-SAR, ICLR 2025; SPEC §10) at equal memory and compute budgets.

    nice python benchmarks/exp_budgeted.py [--seeds 0 1 2 3 4] [--jobs 2] [--samples 600]
                                           [--memory-samples 150] [--out results.json]

Stream: real handwritten `digits` in a Gaussian-boundary (blurry) class-incremental order
(5 tasks of 2 classes, σ = 0.25 of a task's length), `--samples` data, test accuracy on the
seen classes every 100 arrivals. Model: ResNet-32 (the paper's CIFAR model) on the 1×8×8
images, Adam lr 1e-3, batch 16, the `budgeted` framework (each datum predicted on arrival, then
`C / N` steps per arrival at once).

Budgets, the same for every method:
- compute `C` = one 16-row ER step per sample, `3·16·FF` FLOPs (SPEC §10.1); a method whose
  nominal step costs more (MIR's candidate forwards) takes fewer steps per sample;
- memory = what ER stores besides its replay memory (model, Adam state, the pending datum)
  plus `--memory-samples` digits at 64 B; each method's replay memory gets what its own fixed
  state leaves (aL-SAR's sampler and freezing statistics and per-sample use counts cost slots).

Methods: the aL-SAR ablation — Vanilla-ER (aL-SAR's memory-only batches from its class-balanced
memory, drawn uniformly), +Freezing (adaptive layer freezing), +Retrieval (similarity-aware),
aL-SAR (both) — the baselines ER (reservoir, each step its new rows + uniform replay) and MIR
(50 candidates), and aL-SAR spending what freezing saves on further steps (reported apart).
Reported per method, mean ± std over seeds: A_AUC, A_last, online accuracy, training TFLOPs
(what was really run, freezing subtracted, a sampler's bookkeeping added), their change against
Vanilla-ER, the training CPU time per sample measured in the run (`time.thread_time` around each
step; runs share the machine, so see benchmarks/freezing_speed.py for a quiet measurement),
the stored-state peak, the replay capacity, and how often a step froze layers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from exp_common import as_runs, jobs_count, scratch

from analysis.compare import ComparisonRow, Stat, comparison_rows
from analysis.compare_table import markdown_table
from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.experiment import RunSpec, experiment_summary, prepare, run_experiment
from executor.ocl.frameworks import FrameworkOptions

MODEL = "resnet32"
BATCH = 16
METHODS: dict[str, AlgorithmConfig] = {
    "Vanilla-ER": AlgorithmConfig(name="alsar", sampler="uniform", freezing="none"),
    "+Freezing": AlgorithmConfig(name="alsar", sampler="uniform", freezing="adaptive"),
    "+Retrieval": AlgorithmConfig(name="alsar", sampler="similarity-aware", freezing="none"),
    "aL-SAR": AlgorithmConfig(name="alsar"),
    "ER": AlgorithmConfig(name="er"),
    "MIR": AlgorithmConfig(name="mir"),
    "aL-SAR, savings spent": AlgorithmConfig(name="alsar"),
}
SPEND_SAVED = {"aL-SAR, savings spent"}


@dataclass(frozen=True)
class Job:
    label: str
    seed: int
    samples: int
    profile: str
    compute_flops: float
    memory_bytes: int

    def spec(self) -> RunSpec:
        return RunSpec(
            framework="budgeted",
            algorithm=METHODS[self.label],
            framework_options=FrameworkOptions(batch_size=BATCH),
            dataset="digits",
            stream="blurry",
            stream_options={"tasks": 5, "sigma": 0.25},
            model=MODEL,
            samples=self.samples,
            seed=self.seed,
            eval_every=100,
            profile_path=self.profile,
            memory_budget_bytes=self.memory_bytes,
            compute_budget_flops=self.compute_flops,
            spend_saved_compute=self.label in SPEND_SAVED,
        )


def run_job(job: Job) -> dict[str, Any]:
    torch.set_num_threads(1)
    started = time.perf_counter()
    experiment = prepare(job.spec())
    summary = experiment_summary(experiment, run_experiment(experiment), decay_per_s=1.0)
    summary.update(label=job.label, seed=job.seed, job_wall_s=time.perf_counter() - started)
    return summary


def budgets(samples: int, memory_samples: int, folder: Path) -> tuple[str, float, int]:
    """The profile file, `C` (one 16-row step per sample) and the byte budget (ER's fixed state
    plus `memory_samples` replay slots)."""
    probe = prepare(
        RunSpec(
            framework="budgeted",
            algorithm=METHODS["ER"],
            framework_options=FrameworkOptions(batch_size=BATCH),
            dataset="digits",
            stream="blurry",
            model=MODEL,
            samples=samples,
            device="roofline:titan-xp",
            cost_batch=1,
            memory_budget_bytes=10**9,
        )
    )
    path = folder / f"{MODEL}-digits.json"
    probe.setup.profile.save(path)
    split = probe.setup.memory_budget
    assert split is not None
    compute = 3 * BATCH * probe.setup.cost_model.forward_flops
    return str(path), compute, split.fixed_bytes + memory_samples * split.slot_bytes


def run_all(jobs: Sequence[Job], workers: int) -> list[dict[str, Any]]:
    if workers <= 1:
        return [run_job(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_job, jobs))


def report(results: list[dict[str, Any]], compute: float, memory: int) -> str:
    in_order = sorted(results, key=lambda r: list(METHODS).index(r["label"]))
    rows = comparison_rows(as_runs(in_order, "label"), group_by_seed=True)
    base = {run.seed: run.summary for row in rows if row.label == "Vanilla-ER" for run in row.runs}

    def stat(row: ComparisonRow, value: Callable[[dict[str, Any]], float]) -> Stat:
        return Stat.of(value(dict(r.summary)) for r in row.runs)

    def change(row: ComparisonRow, key: str) -> str:
        if not base:
            return "—"
        return Stat.of(100 * (r.summary[key] / base[r.seed][key] - 1) for r in row.runs if r.seed in base).format()

    header = [
        "method",
        "A_AUC %",
        "A_last %",
        "online %",
        "TFLOPs",
        "FLOPs vs Vanilla-ER",
        "CPU ms / sample",
        "CPU vs Vanilla-ER",
        "stored peak KiB",
        "replay slots",
        "frozen steps %",
    ]
    lines = [
        [
            row.label,
            row.stats["a_auc"].format(),
            row.stats["test_accuracy"].format(),
            row.stats["online_accuracy"].format(),
            f"{row.stats['train_flops'].mean / 1e12:.3f}",
            change(row, "train_flops"),
            f"{stat(row, lambda r: 1e3 * r['train_cpu_s'] / r['samples']).mean:.2f}",
            change(row, "train_cpu_s"),
            f"{stat(row, lambda r: r['stored_peak_bytes']).mean / 1024:.1f}",
            f"{stat(row, lambda r: r['buffer_samples']).mean:.0f}",
            f"{100 * stat(row, lambda r: r.get('frozen_step_fraction', 0.0)).mean:.1f}",
        ]
        for row in rows
    ]
    seeds = sorted({r["seed"] for r in results})
    return (
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}); compute budget {compute / 1e6:.1f} MFLOPs per sample, "
        f"memory budget {memory} B ({memory / 1024:.1f} KiB)\n\n" + markdown_table(header, lines)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=jobs_count())
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--memory-samples", type=int, default=150)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    with scratch() as tmp:
        profile, compute, memory = budgets(args.samples, args.memory_samples, Path(tmp))
        jobs = [
            Job(label, seed, args.samples, profile, compute, memory) for seed in args.seeds for label in args.methods
        ]
        # Longest first, so the two workers finish together.
        results = run_all(sorted(jobs, key=lambda j: j.label not in ("MIR", "+Retrieval", "aL-SAR")), args.jobs)
    print(report(results, compute, memory))
    print(f"\nwall {time.perf_counter() - started:.0f} s, {args.jobs} workers")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
