"""Experiment: stale-gradient compensation ablation (Ferret Table 4, on our data), with efficacy.

    python benchmarks/exp_compensation.py [--seeds 0 1 2 3 4] [--jobs 2] [--samples 2000]
        [--workloads digits-ci digits abrupt] [--plans M+] [--cpu-profile PATH] [--compensators …]
        [--out results.json]

None, Step-Aware, Gap-Aware, Fisher and Iter-Fisher (SPEC §5, defaults λ⁰ = 0.2, ν = 2e-6,
α = 0.9, η_λ = 1e-3), and the two curvature compensators `hvp` (exact H·Δθ by double-backward)
and `adam-fisher` (Adam's v̂ as the Fisher diagonal), on the Ferret M+ (and M) plans of MNISTNet
(roofline TITAN Xp profile, or a CPU-measured one with --cpu-profile; `td` = the slowest
layer's forward, Adam lr 1e-3, vanilla OCL), replayed on the twin's schedule, over
class-incremental `digits`, iid `digits` and a synthetic stream whose concept changes abruptly
half-way (`drift=abrupt`, in order). Every compensator sees the same schedule and the same
stale gradients; only the applied gradient differs. Reported: online accuracy (mean ± std
[95 % interval]), its difference to None on the same seed, online accuracy over the second half
of the stream (after the shift, for the abrupt stream), test accuracy, the compensation
efficacy (median over every 50th stale backward: 1 − ‖g_comp − g_latest‖ / ‖g_stash − g_latest‖),
the stale error ‖g_stash − g_latest‖ / ‖g_latest‖ and the correction ‖g_comp − g_stash‖ /
‖g_stash‖, efficacy before/after the middle of the stream, and Iter-Fisher's final λ.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

from exp_common import (
    DIGITS,
    Job,
    Workload,
    as_runs,
    ci95,
    ferret_budgets,
    kib,
    pipeline,
    profile_for,
    run_all,
    save_plan,
    scratch,
    synthetic,
)

from analysis.compare import Stat, comparison_rows
from analysis.compare_table import markdown_table
from executor.stage.optim import OptimizerConfig
from planner.profile import ModelProfile

COMPENSATORS = ("none", "step-aware", "gap-aware", "fisher", "iter-fisher", "hvp", "adam-fisher")


def jobs_for(
    workload: Workload,
    seeds: list[int],
    folder: Path,
    optimizer: OptimizerConfig,
    names: list[str],
    cpu_profile: Path | None,
    compensators: list[str],
) -> list[Job]:
    if cpu_profile is None:
        profile_path = profile_for(workload, folder)
    else:
        profile_path = folder / cpu_profile.name
        for source in (cpu_profile, cpu_profile.with_name(f"{cpu_profile.stem}-b16.json")):
            shutil.copyfile(source, folder / source.name)
    _, middle, _ = ferret_budgets(ModelProfile.load(profile_path), 3)
    budgets = {"M": middle, "M+": None}
    plans = {name: save_plan(profile_path, budgets[name], folder) for name in names}
    return [
        Job(
            f"{plan} {compensation}",
            workload,
            seed,
            profile_path,
            "pipeline",
            pipeline=pipeline(path, compensation),
            tags={"plan_name": plan, "compensator": compensation},
            optimizer=optimizer,
        )
        for plan, path in plans.items()
        for compensation in compensators
        for seed in seeds
    ]


def ablation_table(results: list[dict[str, Any]], plan: str) -> str:
    mine = [r for r in results if r["plan_name"] == plan]
    rows = comparison_rows(as_runs(mine, "compensator"), group_by_seed=True)
    none = {r["seed"]: r for r in mine if r["compensator"] == "none"}
    lines = []
    for row in rows:
        name = row.runs[0].summary["compensator"]
        delta = [r.summary["online_accuracy"] - none[r.seed]["online_accuracy"] for r in row.runs if r.seed in none]
        second_half = Stat.of(r.summary["online_accuracy_second_half"] for r in row.runs)
        efficacy = [r.summary["compensation_efficacy"] for r in row.runs]
        lams = [[x for x in r.summary["final_lambda"] if x is not None] for r in row.runs]
        lam = Stat.of(statistics.fmean(run) for run in lams if run)
        lines.append(
            (
                name,
                ci95(r.summary["online_accuracy"] for r in row.runs),
                ci95(delta) if name != "none" else "—",
                second_half.format(),
                row.stats["test_accuracy"].format(),
                _median(efficacy, "efficacy_median"),
                " / ".join(
                    _median([e["per_stage"][j] for e in efficacy], "efficacy_median")
                    for j in range(len(efficacy[0]["per_stage"]))
                ),
                _median(efficacy, "stale_error_median"),
                _median(efficacy, "correction_median"),
                " / ".join(_median([e["halves"][h] for e in efficacy], "efficacy_median") for h in (0, 1)),
                kib(row.stats["measured_peak_memory_bytes"].mean),
                f"{lam.mean:.4f}" if name == "iter-fisher" and lam.n else "—",
            )
        )
    first = next((r for r in mine if r["compensator"] != "none"), mine[0])
    caption = (
        f"Ferret {plan}: P = {first['num_stages']}, {first['active_workers']} workers, mean staleness "
        f"{Stat.of(r['mean_staleness'] for r in mine).mean:.2f}, stale (compensated) stages "
        f"{first['compensated_stages']}"
    )
    header = (
        "compensation",
        "online acc % [95 % CI]",
        "Δ vs None",
        "2nd half online %",
        "test acc %",
        "efficacy",
        "per stage",
        "stale error",
        "correction",
        "efficacy 1st / 2nd half",
        "memory KiB",
        "final λ",
    )
    return caption + "\n\n" + markdown_table(header, lines)


def _median(summaries: list[dict[str, Any]], key: str) -> str:
    """The mean over runs of each run's median (runs without samples left out)."""
    values = [e[key] for e in summaries if e.get("samples")]
    return f"{statistics.fmean(values):.3g}" if values else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes")
    parser.add_argument("--samples", type=int, default=2000, help="length of the synthetic streams")
    parser.add_argument(
        "--workloads",
        nargs="+",
        default=["digits-ci", "digits", "abrupt"],
        choices=["digits-ci", "digits", "class-incremental", "abrupt"],
    )
    parser.add_argument("--plans", nargs="+", default=["M+"], choices=["M", "M+"])
    parser.add_argument("--cpu-profile", type=Path, default=None, help="a measured profile instead of the roofline")
    parser.add_argument("--compensators", nargs="+", default=list(COMPENSATORS), choices=COMPENSATORS)
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=None, help="write every run's summary here (JSON)")
    args = parser.parse_args()
    optimizer = OptimizerConfig(args.optimizer, args.lr)
    print(f"optimizer {args.optimizer}, lr {args.lr:g}")
    workloads = {
        "digits-ci": Workload("digits-ci", "digits", "class-incremental"),
        "digits": DIGITS,
        "class-incremental": synthetic("synthetic-ci", "class-incremental", args.samples, tasks=5),
        "abrupt": synthetic("synthetic-abrupt", "sequential", args.samples, drift="abrupt"),
    }
    everything = []
    with scratch() as tmp:
        for name in args.workloads:
            workload = workloads[name]
            jobs = jobs_for(workload, args.seeds, Path(tmp), optimizer, args.plans, args.cpu_profile, args.compensators)
            results = run_all(jobs, args.jobs)
            everything += [{**r, "workload": name} for r in results]
            if args.out is not None:  # before the tables: a table that fails loses no run
                args.out.write_text(json.dumps(everything, indent=1, default=str))
            wall = sum(r["job_wall_s"] for r in results)
            print(f"\n## {name}: {workload.describe()} — {len(jobs)} runs, {wall:.0f} s of run time\n")
            for plan in args.plans:
                print(ablation_table(results, plan) + "\n")


if __name__ == "__main__":
    main()
