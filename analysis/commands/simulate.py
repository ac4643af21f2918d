"""`ferret simulate`: run a plan through the SimPy twin and write its predicted schedule and metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.config_args import unit_type
from analysis.output import write_config, write_summary
from analysis.sim_inputs import add_costs_argument, add_sim_config_arguments, costs_from_args, sim_config_from_args
from analysis.units import format_bytes, format_seconds
from planner.builtin import resolve_profile
from planner.fileio import atomic_dir
from planner.plan import Plan
from planner.provenance import check_made_for, content_id
from sim.config import SimConfig
from sim.result import SimResult
from sim.trace_files import TRACE_FORMATS

NAME = "simulate"
HELP = "predict a plan's adaptation rate, memory, latency and drops with the SimPy twin"
DESCRIPTION = (
    "Stream --samples arrivals through the plan's pipeline in simulated time and write summary.json "
    "(adaptation rate as docs/sim.md defines it, peak memory, throughput, drop rate, latency p50/p99, staleness, "
    "utilisation), trace.ftrace (binary, numpy arrays; or trace.jsonl / trace.csv: one row per op, the schedule "
    "the replay executor follows), chrome_trace.json (open in https://ui.perfetto.dev: one track per device; the "
    "first --chrome-max-events events), memory_timeline.csv and "
    "config.json. Arrivals default to the plan's interval, exactly periodic."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, required=True, help="plan JSON from `ferret plan`")
    parser.add_argument(
        "--profile", required=True, help="profile JSON, or builtin:NAME (e.g. builtin:mnistnet-titan-xp)"
    )
    parser.add_argument(
        "--samples",
        type=unit_type("int", "samples", ge=1),
        default=10_000,
        help="number of arrivals to simulate",
    )
    parser.add_argument(
        "--arrival",
        default="fixed",
        help="arrival process: fixed, poisson, bursty (mean gap = the plan's interval), or trace:FILE (CSV of times)",
    )
    parser.add_argument(
        "--seed", type=unit_type("seed", "seed"), default=0, help="seed of the arrivals, jitter and random choices"
    )
    parser.add_argument(
        "--trace-format",
        choices=TRACE_FORMATS,
        default="ftrace",
        help="format of the op trace: ftrace (binary numpy chunks, fast) or the text exports jsonl, csv",
    )
    parser.add_argument(
        "--chrome-max-events",
        type=unit_type("int", "chrome-max-events", ge=0),
        default=50_000,
        help="most events in chrome_trace.json, the start of the run (browser viewers slow down past a few "
        "hundred thousand); 0 = all",
    )
    add_costs_argument(parser)
    add_sim_config_arguments(parser)
    parser.add_argument(
        "--force", action="store_true", help="simulate even when the plan was made from another model's profile"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from sim.arrivals import make_arrivals
    from sim.chrome import write_chrome_trace
    from sim.simulate import simulate
    from sim.trace import FileTrace
    from sim.trace_files import read_chunks

    profile = resolve_profile(args.profile)
    plan = Plan.load(args.plan, num_layers=profile.num_layers)
    forced = check_made_for(
        plan.provenance, profile.made_from(), f"plan {args.plan}", f"profile {args.profile}", force=args.force
    )
    arrivals = make_arrivals(args.arrival, plan.arrival_interval_s)
    config = sim_config_from_args(args)
    fitted = costs_from_args(args, profile)
    costs = None if fitted is None else fitted.for_partition(plan.partition)
    crowding = workers_per_device(plan, config)
    with atomic_dir(args.out) as stage:
        trace_path = stage / f"trace.{args.trace_format}"
        with FileTrace(trace_path, args.trace_format) as trace:
            result = simulate(
                plan, profile, args.samples, arrivals=arrivals, seed=args.seed, config=config, trace=trace, costs=costs
            )
        write_chrome_trace(read_chunks(trace_path), stage / "chrome_trace.json", args.chrome_max_events or None)
        write_memory_timeline(stage / "memory_timeline.csv", result)
        summary = result.to_summary()
        summary["arrival"] = args.arrival
        summary["devices"] = len(result.peak_memory_per_device)
        summary["workers_per_device"] = crowding
        summary["provenance"] = {
            **profile.made_from(),
            "profile": content_id(profile.to_json()),
            "plan": content_id(plan.to_json()),
            "seed": args.seed,
            "samples": args.samples,
            "arrival": args.arrival,
        }
        write_summary(stage, summary)
        write_config(stage, args, sim_config=config.to_json(), plan=plan.to_json())
    print(
        f"{plan.strategy}: {args.samples} samples, R = {result.adaptation_rate:.4g}/s"
        + (f" (closed form {plan.predicted.adaptation_rate:.4g}/s)" if plan.predicted else "")
        + f", peak memory {format_bytes(result.peak_memory_bytes)}"
        + f", drops {100 * result.drop_rate:.1f}%, latency p50 {format_seconds(result.latency_quantile(0.5))}"
        + f" p99 {format_seconds(result.latency_quantile(0.99))}; {result.events} events in {result.wall_s:.2f} s"
        + f" → {args.out}"
    )
    for mismatch in forced:
        print(f"note: --force: the plan was made for {mismatch}")
    if crowding > config.concurrency:
        print(
            f"note: up to {crowding} workers share a device that runs {config.concurrency} op(s) at a time; the twin "
            "models that contention, the closed forms do not (plan without --devices, or simulate with "
            "--exclusive-devices or --concurrency, for their regime)"
        )
    return 0


def workers_per_device(plan: Plan, config: SimConfig) -> int:
    """The most active workers with a stage on one device, as the twin will place them."""
    from sim.simulate import resolve_placement
    from sim.strategies import get_strategy

    placement = resolve_placement(plan, config, get_strategy(plan.strategy).single_device)
    users: dict[int, set[int]] = {}
    for n in plan.active_workers:
        for device in placement[n]:
            users.setdefault(device, set()).add(n)
    return max((len(u) for u in users.values()), default=0)


def write_memory_timeline(path: Path, result: SimResult) -> None:
    """One row per time bucket: its start, the peak total, and each device's peak."""
    devices = result.memory_timeline_per_device.shape[1]
    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(["t_s", "peak_bytes", *(f"device_{d}" for d in range(devices))]) + "\n")
        for t, total, per_device in zip(
            result.memory_timeline_s.tolist(),
            result.memory_timeline_bytes.tolist(),
            result.memory_timeline_per_device.tolist(),
            strict=True,
        ):
            f.write(",".join([f"{t:.9g}", str(total), *map(str, per_device)]) + "\n")
