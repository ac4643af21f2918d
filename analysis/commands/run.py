"""`ferret run`: one stream through one framework and OCL algorithm, in virtual time."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.config_args import add_config_arguments, config_values
from analysis.output import write_config, write_summary
from analysis.run_distributed import distributed, launch_ranks, output_folder
from analysis.run_outputs import check_baseline, print_summary, read_baseline, save_inputs, write_metrics_csv
from analysis.run_pipeline import (
    MEASURED_TRACE,
    PIPELINE_TITLE,
    add_pipeline_arguments,
    pipeline_options,
    with_measured_trace,
)
from analysis.run_repeat import repeated_args
from analysis.sim_inputs import SIM_TITLE
from analysis.units import cli_type, parse_rate

if TYPE_CHECKING:
    from executor.ocl.experiment import RunSpec
    from executor.ocl.frameworks.pipeline import PipelineOptions

NAME = "run"
HELP = "run a stream test-then-train through a framework and an OCL algorithm; write metrics and plots"
DESCRIPTION = (
    "Every datum of the stream is predicted on arrival by the model as it is then, and trained on "
    "or skipped as the framework decides: oracle (every datum, zero delay), 1-skip, random-n, last-n "
    "(B-Skip: N of the latest B), camel (weighted coreset + replay), or a registered pipeline "
    "framework. Time is virtual: a step lasts what the model's profile says (--profile FILE, else "
    "measured here, or --device roofline:NAME); the profile used is saved as profile.json, so that "
    "--repeat-of OUT reruns the very same run. Writes summary.json, config.json, metrics.csv, "
    "accuracy.png and profile.json to --out. With --plan plan.json the stream runs through the plan's pipeline (Ferret, "
    "PipeDream, PipeDream-2BW, GPipe, 1F1B): the twin schedules it for the stream's arrivals and the replay "
    "executor follows that schedule op by op with real data and math, writing also the measured op trace "
    "(trace.jsonl, chrome_trace.json)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from executor.ocl.algorithms import AlgorithmConfig
    from executor.ocl.algorithms.base import BUDGETS_TITLE
    from executor.ocl.experiment import RunSpec
    from executor.ocl.frameworks import FrameworkOptions
    from executor.stage.optim import OptimizerConfig

    # Help sections, in this order. The configs' fields may name theirs (`group` in their
    # metadata); other flags go to the section named where they are added below.
    titles = ("what runs", "time", "framework", PIPELINE_TITLE, SIM_TITLE, "algorithm", BUDGETS_TITLE, "optimizer")
    sections = {title: parser.add_argument_group(title) for title in (*titles, "output")}
    add_config_arguments(parser, RunSpec)
    parser.set_defaults(framework=None)  # not given: oracle, budgeted with --compute-budget, or pipeline with --plan
    sections["time"].add_argument(
        "--decay", type=cli_type(parse_rate), default=1.0, help="data-value decay for the adaptation rate, per second"
    )
    add_config_arguments(parser, FrameworkOptions, title="framework")
    add_pipeline_arguments(parser)
    add_config_arguments(parser, AlgorithmConfig, title="algorithm")
    add_config_arguments(parser, OptimizerConfig, title="optimizer")
    sections["output"].add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="run folder to compare with (oagm, tagm); it must have run the same data set, stream and sample count",
    )
    sections["what runs"].add_argument(
        "--repeat-of",
        type=Path,
        default=None,
        metavar="RUNDIR",
        help="run again exactly what RUNDIR ran (its config.json, with the profile and plan it saved); only --out "
        "may be given beside it",
    )
    sections["output"].add_argument("--out", type=Path, required=True, help="output folder")
    parser.set_defaults(_parser=parser)


def run_spec(args: argparse.Namespace, pipeline: PipelineOptions | None = None) -> RunSpec:
    """The run the parsed flags name (`pipeline`: from `pipeline_options`)."""
    from executor.ocl.algorithms import AlgorithmConfig
    from executor.ocl.experiment import RunSpec
    from executor.ocl.frameworks import FrameworkOptions
    from executor.stage.optim import OptimizerConfig

    return RunSpec(
        **config_values(args, RunSpec),
        algorithm=AlgorithmConfig(**config_values(args, AlgorithmConfig)),
        framework_options=FrameworkOptions(**config_values(args, FrameworkOptions), pipeline=pipeline),
        optimizer=OptimizerConfig(**config_values(args, OptimizerConfig)),
        progress=True,
    )


def run(args: argparse.Namespace) -> int:
    from analysis.plots_run import plot_accuracy_curves
    from executor.distributed.rank import is_output_rank
    from executor.metrics import compare_to_baseline, online_accuracy_curve, seen_accuracy_curve
    from executor.ocl.experiment import experiment_summary, prepare, run_experiment

    if args.repeat_of is not None:
        args = repeated_args(args, args._parser)
    baseline = read_baseline(args.baseline) if args.baseline is not None else None
    if args.compute_budget is not None and args.framework is None and args.plan is None:
        args.framework = "budgeted"  # a compute budget is spent by the budgeted framework
    pipeline = pipeline_options(args)
    if distributed(pipeline) and launch_ranks(args, pipeline):
        return 0  # the ranks did the run; rank 0 wrote the outputs and printed the summary
    with output_folder(args.out, pipeline) as staging:
        experiment = prepare(run_spec(args, with_measured_trace(pipeline, staging)))
        if baseline is not None:
            check_baseline(baseline, experiment.made_from, args.baseline, force=args.force)
        for mismatch in experiment.forced:
            print(f"note: --force: an input was made for {mismatch}")
        save_inputs(staging, experiment, args.out)
        result = run_experiment(experiment)
        if distributed(pipeline) and not is_output_rank():
            return 0
        summary = experiment_summary(experiment, result, args.decay)
        if baseline is not None:
            summary.update(compare_to_baseline(summary, baseline))
            summary["baseline"] = str(args.baseline)
        online = online_accuracy_curve(result.correct)
        test = seen_accuracy_curve(result.group_correct, result.group_total, result.seen)
        if pipeline is not None:
            from sim.chrome import write_chrome_trace
            from sim.trace_files import read_chunks

            write_chrome_trace(read_chunks(staging / MEASURED_TRACE), staging / "chrome_trace.json", 250_000)
        write_config(
            staging, args, arrival_interval_s=experiment.arrival_interval_s, buffer_samples=summary["buffer_samples"]
        )
        write_summary(staging, summary)
        write_metrics_csv(staging / "metrics.csv", result, online, test)
        title = f"{summary['framework']} / {args.algorithm} — {summary['dataset']} ({summary['stream']}), {args.model}"
        plot_accuracy_curves(staging / "accuracy.png", online, result.checkpoint_samples, test, title)
    print_summary(summary, args.out)
    return 0
