"""`ferret deploy`: profile → plan → calibrate → choose with the twin → run → validate → recalibrate → report."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.output import write_config, write_summary
from analysis.units import cli_type, int_at_least, parse_bytes, parse_rate, parse_seconds
from planner.fileio import atomic_dir

NAME = "deploy"
HELP = "the closed loop in one command: profile, plan, calibrate the twin, choose, run, validate, report"
DESCRIPTION = (
    "Profiles the model on this machine, plans the top-K Ferret plans for the budget on --devices devices "
    "(closed forms), runs a short probe of the closed forms' favourite and calibrates the twin on it (unless "
    "--calibration gives an earlier calibration), simulates every candidate with the calibrated twin on the "
    "real device count and keeps the one with the best simulated adaptation rate (the closed forms ignore "
    "contention; the twin does not), runs it, compares its measured trace with the profile-only and the "
    "calibrated twin, recalibrates on the run, and writes report.md (chosen plan, predicted vs measured before "
    "and after calibration, learning curve, and a verdict line) with its pictures; every step's outputs stay "
    "in their sub-folders (profile/, candidates/, probe/, calibration-probe/, run/, sim-*/, validate-*/, "
    "calibration/, logs/)."
)


def _budget(text: str) -> str | int:
    word = text.strip().lower()
    return word if word in ("min", "max") else parse_bytes(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name (see ferret profile --help)")
    parser.add_argument(
        "--budget", type=cli_type(_budget), required=True, help="memory budget: a size, min (M−) or max (M+)"
    )
    parser.add_argument(
        "--arrival-interval",
        type=cli_type(parse_seconds),
        default=None,
        help="time between arrivals (2ms); default: the slowest layer's forward time, as ferret plan",
    )
    parser.add_argument(
        "--devices", type=cli_type(int_at_least(1, "device count")), default=2, help="devices (ranks) D"
    )
    parser.add_argument("--dataset", default="digits", help="data set of the stream (see ferret run --help)")
    parser.add_argument("--stream", default="iid", help="stream order: iid, class-incremental, …")
    parser.add_argument("--arrival", default="fixed", help="arrival process: fixed, poisson, bursty")
    parser.add_argument("--samples", type=cli_type(int_at_least(1, "sample count")), default=1000, help="stream length")
    parser.add_argument(
        "--probe-samples",
        type=cli_type(int_at_least(1, "sample count")),
        default=300,
        help="length of the probe run the twin is calibrated on before it chooses",
    )
    parser.add_argument("--top-k", type=cli_type(int_at_least(1, "candidate count")), default=4, help="plans compared")
    parser.add_argument("--mode", default="distributed", help="executor: distributed (real time) or replay")
    parser.add_argument("--compensation", default="none", help="stale-gradient compensation (see ferret run)")
    parser.add_argument("--decay", type=cli_type(parse_rate), default=1.0, help="data-value decay c, per second")
    parser.add_argument("--seed", type=int, default=0, help="one seed for the stream, weights and the twin")
    parser.add_argument(
        "--calibration", type=Path, default=None, help="a ferret calibrate folder to choose with (skips the probe)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from analysis.deploy.loop import PHASES, DeployLoop, DeploySpec
    from analysis.deploy.report import FIGURES, write_report
    from planner.errors import FerretError

    if args.calibration is not None:
        for name in ("profile.json", "sim_config.json"):
            if not (args.calibration / name).is_file():
                raise FerretError(f"--calibration {args.calibration} has no {name} (give a ferret calibrate folder)")
    spec = DeploySpec(
        model=args.model,
        budget=args.budget,
        devices=args.devices,
        dataset=args.dataset,
        arrival_interval_s=args.arrival_interval,
        stream=args.stream,
        arrival=args.arrival,
        samples=args.samples,
        probe_samples=args.probe_samples,
        seed=args.seed,
        top_k=args.top_k,
        mode=args.mode,
        compensation=args.compensation,
        decay_per_s=args.decay,
        calibration=args.calibration,
    )
    with atomic_dir(args.out) as stage:
        state = DeployLoop(spec, stage, lambda line: print(line, flush=True)).run()
        print(f"[{len(PHASES)}/{len(PHASES)}] report …", flush=True)
        line = write_report(spec, state)
        write_summary(
            stage,
            {
                "verdict": line,
                "chosen_partition": list(state.chosen.plan.partition) if state.chosen else None,
                "errors": {label: {m.name: m.error for m in v.metrics} for label, v in state.validations.items()},
                "phase_seconds": state.timings,
            },
        )
        write_config(stage, args)
    print(line)
    print(f"  wrote {args.out}/ (report.md, {', '.join(FIGURES)}, and every phase's folder)")
    return 0
