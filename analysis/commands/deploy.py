"""`ferret deploy`: profile → plan → calibrate → choose with the twin → run → validate → recalibrate → report."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.config_args import add_config_arguments, config_values
from analysis.output import write_config, write_summary
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from analysis.deploy.loop import DeploySpec
    from analysis.validate import Tolerances

    add_config_arguments(parser, DeploySpec)
    add_config_arguments(parser, Tolerances, title="tolerances of the verdict")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from analysis.deploy.loop import PHASES, DeployLoop, DeploySpec
    from analysis.deploy.report import FIGURES, write_report
    from analysis.validate import Tolerances
    from planner.errors import FerretError

    spec = DeploySpec(**config_values(args, DeploySpec))
    if spec.calibration is not None:
        for name in ("profile.json", "sim_config.json", "costs.json"):
            if not (spec.calibration / name).is_file():
                raise FerretError(f"--calibration {spec.calibration} has no {name} (give a ferret calibrate folder)")
    spec.check()  # a bad name, size or length fails now, not after profiling
    tolerances = Tolerances(**config_values(args, Tolerances))
    with atomic_dir(args.out) as stage:
        state = DeployLoop(spec, stage, lambda line: print(line, flush=True), tolerances).run()
        print(f"[{len(PHASES)}/{len(PHASES)}] report …", flush=True)
        line = write_report(spec, state, tolerances)
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
