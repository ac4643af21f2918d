"""Experiment: OCL frameworks vs memory (Ferret Table 7 and the 3.7× headline, on our data).

    python benchmarks/exp_frameworks_vs_memory.py [--seeds 0 1 2] [--jobs 2]
        [--synthetic-samples 6000] [--out results.json]

Two workloads: `digits` (iid, the 1,437 training images once) and a long synthetic
class-incremental stream (10 classes of 8×8 images in 5 tasks). Model MNISTNet, Adam lr 1e-3,
vanilla OCL, roofline TITAN Xp profile, `td` = the slowest layer's forward. Frameworks:
Oracle, 1-Skip, Random-N, Last-N, Camel (N = 10, B = 50) and Ferret at M− (smallest feasible
budget), M (geometric middle of M− and M+) and M+ (unconstrained), with Iter-Fisher, replayed
on the twin's schedule. Then a memory sweep — Ferret at 7 budgets, the B-Skip family and Camel
at N ∈ {1, 10, 40} (B = 5N) — gives each method's online accuracy against its measured peak
memory, and the memory Ferret needs to match each competitor's online accuracy.

Memory is every run's `measured_peak_memory_bytes` (the same convention for all: weights,
optimizer state, gradients, activations as autograd keeps them, inputs, buffers).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from exp_common import (
    DIGITS,
    Job,
    Workload,
    ferret_budgets,
    group,
    kib,
    mean,
    mean_std,
    pipeline,
    profile_for,
    run_all,
    save_plan,
    scratch,
    synthetic,
    table,
)

from planner.profile import ModelProfile

SEQUENTIAL = ("oracle", "1-skip", "random-n", "last-n", "camel")
SWEPT = ("random-n", "last-n", "camel")
SWEEP_N = (1, 10, 40)
FERRET_POINTS = 7  # M−, five budgets between, M+; the middle one is M


def jobs_for(workload: Workload, seeds: list[int], folder: Path) -> list[Job]:
    profile_path = profile_for(workload, folder)
    budgets = ferret_budgets(ModelProfile.load(profile_path), FERRET_POINTS)
    names = {0: "Ferret M−", FERRET_POINTS // 2: "Ferret M", FERRET_POINTS - 1: "Ferret M+"}
    plans = [(names.get(k, f"Ferret {k}"), save_plan(profile_path, b, folder)) for k, b in enumerate(budgets)]
    jobs = []
    for seed in seeds:
        for framework in SEQUENTIAL:
            jobs.append(Job(framework, workload, seed, profile_path, framework, tags={"n": 10, "sweep": framework}))
        for framework in SWEPT:
            for n in SWEEP_N:
                if n != 10:
                    tags = {"n": n, "sweep": framework}
                    jobs.append(
                        Job(framework, workload, seed, profile_path, framework, batch_size=n, window=5 * n, tags=tags)
                    )
        for k, (label, plan) in enumerate(plans):
            tags = {"budget": budgets[k], "sweep": "ferret", "point": k}
            jobs.append(Job(label, workload, seed, profile_path, "pipeline", pipeline=pipeline(plan), tags=tags))
    return jobs


HEADLINE = ("oracle", "1-skip", "random-n", "last-n", "camel", "Ferret M−", "Ferret M", "Ferret M+")


def headline_table(results: list[dict[str, Any]]) -> str:
    baseline = {r["seed"]: r for r in results if r["label"] == "1-skip"}
    rows = []
    for label in HEADLINE:
        runs = [r for r in results if r["label"] == label and r.get("n", 10) == 10]
        oagm = [
            (r["online_accuracy"] - baseline[r["seed"]]["online_accuracy"])
            - math.log(r["measured_peak_memory_bytes"] / baseline[r["seed"]]["measured_peak_memory_bytes"])
            for r in runs
        ]
        rows.append(
            (
                label,
                mean_std(r["online_accuracy"] for r in runs),
                mean_std(r["test_accuracy"] for r in runs),
                kib(mean(r["measured_peak_memory_bytes"] for r in runs)),
                mean_std(oagm),
                f"{100 * mean(r['trained'] / r['samples'] for r in runs):.0f}",
            )
        )
    return table(("framework", "online acc %", "test acc %", "memory KiB", "oagm vs 1-Skip", "trained %"), rows)


def sweep_points(results: list[dict[str, Any]]) -> dict[tuple[str, Any], tuple[float, float, str]]:
    """(method, configuration) → (mean memory, mean online accuracy, accuracy mean ± std)."""
    points = {}
    for (sweep, config), runs in group(results, lambda r: (r["sweep"], r.get("point", r.get("n")))).items():
        points[(sweep, config)] = (
            mean(r["measured_peak_memory_bytes"] for r in runs),
            mean(r["online_accuracy"] for r in runs),
            mean_std(r["online_accuracy"] for r in runs),
        )
    return points


def sweep_table(points: dict[tuple[str, Any], tuple[float, float, str]]) -> str:
    rows = []
    for (sweep, config), (memory, _, acc) in sorted(points.items(), key=lambda kv: (kv[0][0], kv[1][0])):
        label = f"budget point {config}" if sweep == "ferret" else f"N = {config}" if sweep in SWEPT else "—"
        rows.append((sweep, label, kib(memory), acc))
    return table(("method", "configuration", "memory KiB", "online acc %"), rows)


def reach_table(points: dict[tuple[str, Any], tuple[float, float, str]]) -> tuple[str, float]:
    """For each competitor configuration: the least memory of a Ferret point with at least its
    online accuracy (means over seeds), and the ratio competitor / Ferret."""
    ferret = sorted((m, a) for (s, _), (m, a, _) in points.items() if s == "ferret")
    rows, best = [], 0.0
    for (sweep, config), (memory, accuracy, acc_text) in sorted(points.items()):
        if sweep in ("ferret", "oracle"):
            continue
        reach = [m for m, a in ferret if a >= accuracy]
        name = f"{sweep} (N = {config})" if sweep in SWEPT else sweep
        if reach:
            ratio = memory / min(reach)
            best = max(best, ratio)
            rows.append((name, acc_text, kib(memory), kib(min(reach)), f"{ratio:.2f}×"))
        else:
            rows.append((name, acc_text, kib(memory), "not reached", "—"))
    header = ("competitor", "its online acc %", "its memory KiB", "Ferret memory KiB to match", "ratio")
    return table(header, rows), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes")
    parser.add_argument("--synthetic-samples", type=int, default=6000, help="length of the synthetic stream")
    parser.add_argument("--workloads", nargs="+", default=["digits", "synthetic"], choices=["digits", "synthetic"])
    parser.add_argument("--out", type=Path, default=None, help="write every run's summary here (JSON)")
    args = parser.parse_args()
    workloads = {
        "digits": DIGITS,
        "synthetic": synthetic("synthetic-ci", "class-incremental", args.synthetic_samples, tasks=5),
    }
    everything = []
    with scratch() as tmp:
        for name in args.workloads:
            workload = workloads[name]
            jobs = jobs_for(workload, args.seeds, Path(tmp))
            results = run_all(jobs, args.jobs)
            everything += [{**r, "workload": name} for r in results]
            wall = sum(r["job_wall_s"] for r in results)
            print(f"\n## {name}: {workload.describe()} — {len(jobs)} runs, {wall:.0f} s of run time\n")
            print(headline_table(results))
            points = sweep_points(results)
            print("\nMemory sweep (mean over seeds):\n")
            print(sweep_table(points))
            reach, best = reach_table(points)
            print("\nMemory Ferret needs to reach each competitor's online accuracy:\n")
            print(reach)
            print(f"\nlargest ratio: {best:.2f}×")
    if args.out is not None:
        args.out.write_text(json.dumps(everything, indent=1, default=str))


if __name__ == "__main__":
    main()
