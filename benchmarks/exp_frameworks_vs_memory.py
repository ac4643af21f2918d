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
from pathlib import Path
from typing import Any

from exp_common import (
    DIGITS,
    Job,
    Workload,
    as_runs,
    ferret_budgets,
    kib,
    pipeline,
    profile_for,
    run_all,
    save_plan,
    scratch,
    synthetic,
)

from analysis.compare import ComparisonRow, comparison_rows
from analysis.compare_table import comparison_markdown, markdown_table
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
    """Ferret's Table 7: each framework at N = 10, mean ± std over seeds, oagm against 1-Skip seed by seed."""
    headline = [r for r in results if r["label"] in HEADLINE and r.get("n", 10) == 10]
    rows = comparison_rows(as_runs(headline, "label"), group_by_seed=True)
    keys = ("online_accuracy", "test_accuracy", "measured_peak_memory_bytes", "trained_share", "oagm")
    return comparison_markdown(rows, grouped=True, keys=keys)


def sweep_rows(results: list[dict[str, Any]]) -> list[ComparisonRow]:
    """One row per (method, configuration): its runs over the seeds."""
    return comparison_rows(as_runs(results, "sweep", "point", "n"), group_by_seed=True)


def _method(row: ComparisonRow) -> tuple[str, Any]:
    config = row.runs[0].config
    return config["sweep"], config["point"] if config["sweep"] == "ferret" else config["n"]


def _memory(row: ComparisonRow) -> float:
    return row.stats["measured_peak_memory_bytes"].mean


def sweep_table(rows: list[ComparisonRow]) -> str:
    lines = []
    for row in sorted(rows, key=lambda r: (_method(r)[0], _memory(r))):
        sweep, config = _method(row)
        label = f"budget point {config}" if sweep == "ferret" else f"N = {config}" if sweep in SWEPT else "—"
        lines.append((sweep, label, kib(_memory(row)), row.stats["online_accuracy"].format()))
    return markdown_table(("method", "configuration", "memory KiB", "online acc %"), lines)


def reach_table(rows: list[ComparisonRow]) -> tuple[str, float]:
    """For each competitor configuration: the least memory of a Ferret point with at least its
    online accuracy (means over seeds), and the ratio competitor / Ferret."""
    ferret = [(_memory(r), r.stats["online_accuracy"].mean) for r in rows if _method(r)[0] == "ferret"]
    lines, best = [], 0.0
    for row in sorted(rows, key=_method):
        sweep, config = _method(row)
        if sweep in ("ferret", "oracle"):
            continue
        accuracy = row.stats["online_accuracy"]
        reach = [m for m, a in ferret if a >= accuracy.mean]
        name = f"{sweep} (N = {config})" if sweep in SWEPT else sweep
        if reach:
            ratio = _memory(row) / min(reach)
            best = max(best, ratio)
            lines.append((name, accuracy.format(), kib(_memory(row)), kib(min(reach)), f"{ratio:.2f}×"))
        else:
            lines.append((name, accuracy.format(), kib(_memory(row)), "not reached", "—"))
    header = ("competitor", "its online acc %", "its memory KiB", "Ferret memory KiB to match", "ratio")
    return markdown_table(header, lines), best


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
            rows = sweep_rows(results)
            print("\nMemory sweep (mean over seeds):\n")
            print(sweep_table(rows))
            reach, best = reach_table(rows)
            print("\nMemory Ferret needs to reach each competitor's online accuracy:\n")
            print(reach)
            print(f"\nlargest ratio: {best:.2f}×")
    if args.out is not None:
        args.out.write_text(json.dumps(everything, indent=1, default=str))


if __name__ == "__main__":
    main()
