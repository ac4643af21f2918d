"""`ferret whatif`: sweep budgets (and intervals) × strategies; plan each, simulate each, compare."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from analysis.config_args import unit_type
from analysis.output import write_config, write_summary
from analysis.sim_inputs import add_costs_argument, add_sim_config_arguments, costs_from_args, sim_config_from_args
from analysis.units import (
    SizeGrid,
    cli_type,
    format_bytes,
    parse_bytes,
    parse_positive_int,
    parse_rate,
    parse_seconds,
    parse_size_range,
)
from analysis.whatif import DEFAULT_STRATEGIES, planner_strategy
from planner.builtin import resolve_profile
from planner.errors import FerretError
from planner.fileio import atomic_dir
from planner.learning import model_for
from planner.limits import check_work, limits
from planner.plan import MAX_GROUP
from planner.quantities import MAX_DEVICES
from sim.simulate import ops_per_datum

NAME = "whatif"
HELP = "sweep memory budgets and strategies: closed-form plan and simulated R, memory, drops for each"
DESCRIPTION = (
    "For every strategy and budget (and arrival interval), make the strategy's plan with the closed forms, "
    "then simulate it on a stream. Writes whatif.csv (one row per point: predicted and simulated R and "
    "memory, throughput, drops, latency), summary.json, config.json and three figures: "
    "rate_vs_memory.png (Pareto front ringed), drops_vs_memory.png, predicted_vs_simulated.png. "
    "Strategies: ferret, pipedream, pipedream-2bw, gpipe, 1f1b, and the sequential baselines 1-skip, "
    "last-n, random-n. Plans give each (worker, stage) its own device unless --devices says fewer exist."
)


def _budgets(text: str) -> SizeGrid | int:
    """A range or list of sizes (`4MiB:512MiB:x2`, `a,b,c`), one size, or `auto[:K]` (→ K)."""
    if text.strip().startswith("auto"):
        _, _, count = text.strip().partition(":")
        return parse_positive_int(count) if count else 12
    if ":" in text or "," in text:
        return parse_size_range(text)
    return SizeGrid(0, 0, values=(parse_bytes(text),))


def _interval_or_auto(text: str) -> float | str:
    return "auto" if text.strip() == "auto" else parse_seconds(text)


def _intervals(text: str) -> list[float]:
    return [parse_seconds(part) for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="profile JSON, or builtin:NAME")
    parser.add_argument(
        "--budgets",
        type=cli_type(_budgets),
        default=12,
        help="e.g. 4MiB:512MiB:x2, 1MiB:8MiB:+1MiB, a,b,c, one size, or auto[:K] (default auto:12): K budgets "
        "spaced geometrically from the smallest footprint any pipeline strategy reaches to 1.25× Ferret's M+",
    )
    parser.add_argument(
        "--arrival-interval",
        type=cli_type(_interval_or_auto),
        default="auto",
        help="mean gap, e.g. 2ms; default 'auto' = the slowest layer's forward time, as in the paper "
        "(ignored when --intervals is given)",
    )
    parser.add_argument(
        "--intervals", type=cli_type(_intervals), default=None, help="several gaps to sweep too, e.g. 1ms,2ms,4ms"
    )
    parser.add_argument("--decay", type=cli_type(parse_rate), default=1.0, help="data-value decay rate c, e.g. 1/s")
    parser.add_argument(
        "--strategies",
        default=",".join(DEFAULT_STRATEGIES),
        help="comma-separated strategies to compare; 'ferret-learning' is Ferret planned with --objective "
        "learning (the learning model beside the profile, else the built-in one)",
    )
    parser.add_argument(
        "--samples", type=cli_type(parse_positive_int), default=5000, help="arrivals simulated per point"
    )
    parser.add_argument("--arrival", default="fixed", choices=("fixed", "poisson", "bursty"), help="arrival process")
    parser.add_argument("--seed", type=unit_type("seed", "seed"), default=0, help="seed of every point's stream")
    parser.add_argument(
        "--baseline-batch",
        type=unit_type("int", "baseline-batch", ge=1, le=MAX_GROUP),
        default=8,
        help="mini-batch N of the last-n/random-n baselines",
    )
    parser.add_argument(
        "--jobs",
        type=unit_type("int", "jobs", ge=1, le=1024),
        default=os.cpu_count() or 1,
        help="points simulated in parallel (processes)",
    )
    parser.add_argument(
        "--devices",
        type=unit_type("int", "devices", ge=1, le=MAX_DEVICES),
        default=None,
        help="devices D the pipeline plans are placed on (stage owners: contiguous blocks balanced by stage time); "
        "default: one per (worker, stage), the closed forms' regime; fewer devices make workers contend in the twin",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    add_costs_argument(parser)
    add_sim_config_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from analysis.plots_whatif import write_figures
    from analysis.whatif import WhatIfJob, run_sweep, sweep_summary, tqdm_progress, write_csv
    from sim.strategies import get_strategy

    profile = resolve_profile(args.profile)
    if args.arrival_interval == "auto":
        args.arrival_interval = float(profile.t_fwd.max())
    intervals = args.intervals or [args.arrival_interval]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        raise FerretError("--strategies is empty")
    for name in strategies:
        get_strategy(planner_strategy(name))  # unknown names fail here, before any work
    learning_model = model_for(None if args.profile.startswith("builtin:") else args.profile)
    grid = len(intervals) * len(strategies)
    count = args.budgets if isinstance(args.budgets, int) else len(args.budgets)
    check_work(
        "max_points",
        grid * count,
        f"{count} budgets × {len(strategies)} strategies × {len(intervals)} intervals",
        "points",
    )
    check_work(
        "max_events",
        grid * count * args.samples * ops_per_datum(1),
        f"{grid * count} points of {args.samples} samples",
        "ops",
    )
    if isinstance(args.budgets, int):
        from analysis.whatif import auto_budgets

        args.budgets = auto_budgets(profile, strategies, intervals[0], args.decay, args.budgets)
    args.budgets = list(args.budgets)
    if not args.budgets:
        raise FerretError("--budgets gives no budget")
    config = sim_config_from_args(args)
    costs = costs_from_args(args, profile)
    jobs = [
        WhatIfJob(
            name,
            budget,
            interval,
            args.decay,
            args.samples,
            args.arrival,
            args.seed,
            config,
            args.baseline_batch,
            args.devices,
            learning_model,
            costs,
        )
        for interval in intervals
        for name in strategies
        for budget in args.budgets
    ]
    with atomic_dir(args.out) as stage:  # staged (and locked) from the start: a second writer fails now
        rows = run_sweep(
            jobs, profile, workers=args.jobs, progress=tqdm_progress(not args.no_progress), limits=limits()
        )
        write_csv(stage / "whatif.csv", rows)
        figures = write_figures(rows, stage)
        summary = sweep_summary(rows)
        summary["figures"] = figures
        write_summary(stage, summary)
        write_config(stage, args, intervals_s=intervals, sim_config=config.to_json(), model=profile.model)
    feasible = sum(r.feasible for r in rows)
    best = max((r for r in rows if r.feasible), key=lambda r: r.rate, default=None)
    print(
        f"{len(rows)} points ({feasible} feasible) over {len(strategies)} strategies × {len(args.budgets)} budgets"
        + (f" × {len(intervals)} intervals" if len(intervals) > 1 else "")
        + (
            f"; best R {best.rate:.4g}/s by {best.strategy} at {format_bytes(best.budget_bytes)}"
            if best is not None
            else "; no budget is feasible"
        )
        + f" → {args.out}"
    )
    return 0
