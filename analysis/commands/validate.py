"""`ferret validate`: the twin's prediction against a measured run, metric by metric and op by op."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.config_args import add_config_arguments, config_values
from analysis.output import write_config, write_summary
from planner.fileio import atomic_dir

NAME = "validate"
HELP = "compare a predicted run (ferret simulate) with a measured one (ferret run --plan), op by op"
DESCRIPTION = (
    "Pairs the two traces' ops by (kind, sample, stage) and reports, side by side with relative errors: "
    "throughput, drop rate, adaptation rate R (measured form, docs/validate.md), latency p50/p99, peak memory (total "
    "and per device), mean staleness and its histogram, and per op kind the median and p90 duration error. "
    "Writes validation.json, validation.md, gantt.png (a window of both schedules, one lane per device), "
    "memory.png (memory over time, overlaid), durations.png (predicted vs measured op durations), "
    "summary.json and config.json. A replay run's timeline is sequential: its op durations, drops, "
    "staleness and memory are compared, its timing metrics are shown but not compared."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from analysis.validate import Tolerances
    from analysis.validate_report import FigureOptions

    parser.add_argument("--predicted", type=Path, required=True, help="output folder of ferret simulate")
    parser.add_argument("--measured", type=Path, required=True, help="output folder of ferret run --plan")
    add_config_arguments(parser, Tolerances, title="tolerances (marked ok/OUT in the report)")
    add_config_arguments(parser, FigureOptions)
    parser.add_argument(
        "--force", action="store_true", help="compare even when the folders were made for other models or streams"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from analysis.run_folder import load_run_folder
    from analysis.validate import FORCED_NOTE, Tolerances, validate
    from analysis.validate_report import FigureOptions, console_lines, write_validation

    predicted = load_run_folder(args.predicted, "--predicted")
    measured = load_run_folder(args.measured, "--measured")
    result = validate(predicted, measured, Tolerances(**config_values(args, Tolerances)), force=args.force)
    with atomic_dir(args.out) as stage:
        figures = write_validation(result, stage, FigureOptions(**config_values(args, FigureOptions)))
        write_summary(stage, {m.name: m.error for m in result.metrics} | {"ops_paired": len(result.aligned)})
        write_config(stage, args, predicted_source=predicted.source, measured_source=measured.source)
    print(f"validate: {measured.source} run {args.measured} against {predicted.source} {args.predicted}")
    print(f"  {'metric':18s} {'predicted':>14s} {'measured':>14s}  {'error':>10s}")
    for line in console_lines(result):
        print(line)
    for note in result.notes:
        if note.startswith(FORCED_NOTE):
            print(f"note: {note}")
    print(f"  wrote {args.out}/ (validation.json, validation.md, {', '.join(figures)})")
    return 0
