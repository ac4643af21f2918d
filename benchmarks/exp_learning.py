"""Experiment: pipelines that learn — the headline table, the bar, and the two objectives.

    python benchmarks/exp_learning.py headline [--seeds 0 1 2 3 4] [--jobs 2] [--synthetic-samples 4000]
    python benchmarks/exp_learning.py bar --cpu-profile PATH [--seeds 0 1 2 3 4] [--jobs 2]
    python benchmarks/exp_learning.py objectives [--budgets 5] [--seeds 0 1 2 3 4] [--jobs 2] [--plot FILE]

`headline`: Oracle, 1-Skip, the best B-Skip (Random-N / Last-N, N = 10), Camel, Ferret M−/M/M+
as the paper defines them (objective `rate`, weight stashing, Iter-Fisher) and Ferret M+ as
`ferret plan --budget max` now chooses it (default objective and compensation), on
class-incremental and iid `digits` and the long synthetic class-incremental stream. `bar`:
Oracle against the default M+ plan on the roofline TITAN Xp profile and a CPU-measured one
(class-incremental and iid digits). `objectives`: across budgets from M− to M+, each objective's
plan, its planned score and the online accuracy its replay measures (one plot). Model MNISTNet,
Adam lr 1e-3, vanilla OCL, `td` = the slowest layer's forward; every table ≥ 5 seeds, mean ± std
and the 95 % interval of the mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from exp_common import (
    DIGITS,
    Job,
    Workload,
    ci95,
    ferret_budgets,
    kib,
    pipeline,
    profile_for,
    run_all,
    scratch,
    synthetic,
)

from analysis.compare_table import markdown_table
from planner.closed_form import adaptation_rate
from planner.learning import DEFAULT_OBJECTIVE, beside, learning_rate, model_for
from planner.plan import Plan
from planner.profile import ModelProfile
from planner.strategies import make_plan

DIGITS_CI = Workload("digits-ci", "digits", "class-incremental")
DEFAULT_COMPENSATION = "none"  # `ferret run --plan`'s default


def plan_file(profile_path: Path, folder: Path, budget: int | None, objective: str, name: str) -> Path:
    profile = ModelProfile.load(profile_path)
    td = float(profile.t_fwd.max())
    model = model_for(profile_path)
    result = make_plan("ferret", profile, td, budget_bytes=budget, objective=objective, learning_model=model)
    path = folder / f"{name}.json"
    result.plan.save(path)
    return path


def describe(path: Path) -> str:
    plan = Plan.load(path)
    kinds = "/".join(sorted({w.backward_weights for w in plan.workers if w.active}))
    return f"P = {plan.num_stages}, N = {plan.num_workers} ({len(plan.active_workers)} active), {kinds}"


def headline_jobs(workload: Workload, seeds: list[int], folder: Path) -> tuple[list[Job], dict[str, str]]:
    profile_path = profile_for(workload, folder)
    low, middle, _ = ferret_budgets(ModelProfile.load(profile_path), 3)
    plans = {
        "Ferret M−": plan_file(profile_path, folder, low, "rate", f"{workload.name}-mminus"),
        "Ferret M": plan_file(profile_path, folder, middle, "rate", f"{workload.name}-m"),
        "Ferret M+": plan_file(profile_path, folder, None, "rate", f"{workload.name}-mplus"),
        "Ferret M+ (default)": plan_file(profile_path, folder, None, DEFAULT_OBJECTIVE, f"{workload.name}-default"),
    }
    compensation = {"Ferret M+ (default)": DEFAULT_COMPENSATION}
    jobs = []
    for seed in seeds:
        for framework in ("oracle", "1-skip", "random-n", "last-n", "camel"):
            jobs.append(Job(framework, workload, seed, profile_path, framework))
        for label, path in plans.items():
            extra = pipeline(path, compensation.get(label, "iter-fisher"))
            jobs.append(Job(label, workload, seed, profile_path, "pipeline", pipeline=extra))
    return jobs, {label: describe(path) for label, path in plans.items()}


def headline_table(results: list[dict[str, Any]]) -> str:
    oracle = {r["seed"]: r["online_accuracy"] for r in results if r["label"] == "oracle"}
    bskip = max(
        ("random-n", "last-n"), key=lambda f: statistics.fmean(r["online_accuracy"] for r in results if r["label"] == f)
    )
    rows = []
    for label in ("oracle", "1-skip", bskip, "camel", "Ferret M−", "Ferret M", "Ferret M+", "Ferret M+ (default)"):
        runs = [r for r in results if r["label"] == label]
        gap = [r["online_accuracy"] - oracle[r["seed"]] for r in runs]
        rows.append(
            (
                label if label != bskip else f"best B-Skip ({label}, N = 10)",
                ci95(r["online_accuracy"] for r in runs),
                ci95(gap) if label != "oracle" else "—",
                ci95(r["test_accuracy"] for r in runs),
                kib(statistics.fmean(r["measured_peak_memory_bytes"] for r in runs)),
                f"{statistics.fmean(r.get('mean_staleness') or 0 for r in runs):.2f}",
            )
        )
    header = ("framework", "online acc % [95 % CI]", "vs Oracle", "test acc %", "memory KiB", "staleness")
    return markdown_table(header, rows)


def headline(args: argparse.Namespace) -> list[dict[str, Any]]:
    workloads = {
        "digits-ci": DIGITS_CI,
        "digits": DIGITS,
        "synthetic": synthetic("synthetic-ci", "class-incremental", args.synthetic_samples, tasks=5),
    }
    everything = []
    with scratch() as tmp:
        for name in args.workloads:
            jobs, plans = headline_jobs(workloads[name], args.seeds, Path(tmp))
            started = time.perf_counter()
            results = run_all(jobs, args.jobs)
            everything += [{**r, "workload": name} for r in results]
            print(
                f"\n## {name}: {workloads[name].describe()} — {len(jobs)} runs, "
                f"{time.perf_counter() - started:.0f} s wall\n"
            )
            print("plans: " + "; ".join(f"{k}: {v}" for k, v in plans.items()) + "\n")
            print(headline_table(results))
    return everything


def bar(args: argparse.Namespace) -> list[dict[str, Any]]:
    everything = []
    with scratch() as tmp:
        folder = Path(tmp)
        profiles = {"roofline titan-xp": profile_for(DIGITS_CI, folder)}
        if args.cpu_profile is not None:
            cpu = copy_profile(args.cpu_profile, folder)
            profiles["cpu-measured"] = cpu
        for stream in args.streams:
            workload = Workload(f"digits-{stream}", "digits", stream)
            jobs = [Job("oracle", workload, s, profiles["roofline titan-xp"], "oracle") for s in args.seeds]
            described = {}
            for name, path in profiles.items():
                plan = plan_file(path, folder, None, DEFAULT_OBJECTIVE, f"bar-{name.split()[0]}")
                described[name] = describe(plan)
                extra = pipeline(plan, args.compensation)
                jobs += [Job(name, workload, s, path, "pipeline", pipeline=extra) for s in args.seeds]
            results = run_all(jobs, args.jobs)
            everything += [{**r, "stream": stream} for r in results]
            oracle = {r["seed"]: r["online_accuracy"] for r in results if r["label"] == "oracle"}
            rows = [("oracle", "—", ci95(oracle.values()), "—", "—")]
            for name in profiles:
                runs = [r for r in results if r["label"] == name]
                rows.append(
                    (
                        f"`plan --budget max` on {name}",
                        described[name],
                        ci95(r["online_accuracy"] for r in runs),
                        ci95(r["online_accuracy"] - oracle[r["seed"]] for r in runs),
                        kib(statistics.fmean(r["measured_peak_memory_bytes"] for r in runs)),
                    )
                )
            print(f"\n## {stream} digits\n")
            print(markdown_table(("run", "plan", "online acc % [95 % CI]", "vs Oracle", "memory KiB"), rows))
    return everything


def objectives(args: argparse.Namespace) -> list[dict[str, Any]]:
    with scratch() as tmp:
        folder = Path(tmp)
        profile_path = (
            profile_for(DIGITS_CI, folder) if args.cpu_profile is None else copy_profile(args.cpu_profile, folder)
        )
        profile = ModelProfile.load(profile_path)
        budgets = ferret_budgets(profile, args.budgets)
        model = model_for(profile_path)
        jobs = [Job("oracle", DIGITS_CI, s, profile_path, "oracle", tags={"key": "oracle"}) for s in args.seeds]
        points: dict[tuple[str, int], str] = {}  # (objective, budget point) → plan key
        described: dict[str, tuple[float, float, str]] = {}
        for k, budget in enumerate(budgets):
            for objective in ("rate", "learning"):
                path = plan_file(profile_path, folder, budget, objective, f"obj-{objective}-{k}")
                plan = Plan.load(path)
                key = json.dumps(dataclasses.asdict(dataclasses.replace(plan, budget_bytes=None, predicted=None)))
                points[(objective, k)] = key
                if key in described:  # the two objectives chose the same plan: replay it once
                    continue
                score = learning_rate(profile, plan, model) * plan.arrival_interval_s
                described[key] = (score, adaptation_rate(profile, plan), describe(path))
                options = pipeline(path, DEFAULT_COMPENSATION)
                tags = {"key": key}
                jobs += [Job(f"{objective} {k}", DIGITS_CI, s, profile_path, "pipeline", pipeline=options, tags=tags)
                         for s in args.seeds]  # fmt: skip
        results = run_all(jobs, args.jobs)
    oracle = statistics.fmean(r["online_accuracy"] for r in results if r["key"] == "oracle")
    rows = []
    plotted: dict[str, list] = {"rate": [], "learning": []}
    for (objective, k), key in sorted(points.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        score, rate, text = described[key]
        runs = [r for r in results if r["key"] == key]
        plotted[objective].append((score, statistics.fmean(r["online_accuracy"] for r in runs), rate))
        budget = budgets[k]
        memory = kib(statistics.fmean(r["measured_peak_memory_bytes"] for r in runs))
        rows.append((k, "max" if budget is None else kib(budget), objective, text, f"{rate:.4g}", f"{score:.3f}",
                     ci95(r["online_accuracy"] for r in runs), memory))  # fmt: skip
    print(f"profile {profile.device} ({profile.source}); Oracle {oracle:.2f} % online; {len(jobs)} runs\n")
    header = ("point", "budget KiB", "objective", "plan", "R (F3) /s", "learning score", "online acc %", "memory KiB")
    print(markdown_table(header, rows))
    if args.plot is not None:
        _plot(plotted, oracle, args.plot)
    return [{k: v for k, v in r.items() if k != "key"} for r in results]


def copy_profile(source: Path, folder: Path) -> Path:
    """The profile and what lives beside it (its batch-16 profile, its learning model) in `folder`."""
    for sibling in (source, source.with_name(f"{source.stem}-b16.json"), beside(source)):
        if sibling.exists():
            shutil.copyfile(sibling, folder / sibling.name)
    return folder / source.name


def _plot(points: dict[str, list[tuple[float, float, float]]], oracle: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for objective, marker in (("rate", "o"), ("learning", "s")):
        pts = points[objective]
        axes[0].scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=f"--objective {objective}")
        axes[1].scatter([p[2] for p in pts], [p[1] for p in pts], marker=marker, label=f"--objective {objective}")
    for ax, xlabel in zip(
        axes, ("planned learning score (share of Oracle's value)", "planned R (F3), 1/s"), strict=True
    ):
        ax.axhline(oracle, color="grey", linestyle="--", linewidth=1, label="Oracle")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("online accuracy % (replay, mean over seeds)")
        ax.legend()
    fig.suptitle("Planned score vs measured learning across budgets (class-incremental digits)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nplot → {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("headline", "bar", "objectives"):
        p = sub.add_parser(name)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
        p.add_argument("--jobs", type=int, default=1)
        p.add_argument("--out", type=Path, default=None, help="every run's summary (JSON)")
    sub.choices["headline"].add_argument("--synthetic-samples", type=int, default=4000)
    sub.choices["headline"].add_argument(
        "--workloads",
        nargs="+",
        default=["digits-ci", "digits", "synthetic"],
        choices=["digits-ci", "digits", "synthetic"],
    )
    sub.choices["bar"].add_argument("--cpu-profile", type=Path, default=None)
    sub.choices["bar"].add_argument("--compensation", default=DEFAULT_COMPENSATION, help="of the Ferret runs")
    sub.choices["bar"].add_argument("--streams", nargs="+", default=["class-incremental", "iid"])
    sub.choices["objectives"].add_argument("--budgets", type=int, default=5)
    sub.choices["objectives"].add_argument("--plot", type=Path, default=None)
    sub.choices["objectives"].add_argument("--cpu-profile", type=Path, default=None, help="instead of the roofline")
    args = parser.parse_args()
    results = {"headline": headline, "bar": bar, "objectives": objectives}[args.what](args)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
