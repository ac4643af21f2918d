"""`ferret run`: one stream through one framework and OCL algorithm, in virtual time."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.output import write_config, write_summary
from analysis.run_outputs import print_summary, read_baseline, write_metrics_csv
from analysis.run_pipeline import MEASURED_TRACE, add_pipeline_arguments, pipeline_options, resolve_pipeline
from analysis.units import (
    cli_type,
    parse_bytes,
    parse_flops,
    parse_key_value,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_positive_float,
    parse_positive_int,
    parse_rate,
    parse_seconds,
)
from planner.errors import FerretError
from planner.fileio import atomic_dir

NAME = "run"
HELP = "run a stream test-then-train through a framework and an OCL algorithm; write metrics and plots"
DESCRIPTION = (
    "Every datum of the stream is predicted on arrival by the model as it is then, and trained on "
    "or skipped as the framework decides: oracle (every datum, zero delay), 1-skip, random-n, last-n "
    "(B-Skip: N of the latest B), camel (weighted coreset + replay), or a registered pipeline "
    "framework. Time is virtual: a step lasts what the model's profile says (--profile FILE, else "
    "measured here, or --device roofline:NAME). Writes summary.json, config.json, metrics.csv and "
    "accuracy.png to --out. With --plan plan.json the stream runs through the plan's pipeline (Ferret, "
    "PipeDream, PipeDream-2BW, GPipe, 1F1B): the twin schedules it for the stream's arrivals and the replay "
    "executor follows that schedule op by op with real data and math, writing also the measured op trace "
    "(trace.jsonl, chrome_trace.json)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what runs")
    what.add_argument(
        "--framework",
        default=None,
        help="oracle (default), 1-skip, random-n, last-n, camel, budgeted (default with --compute-budget); "
        "pipeline with --plan",
    )
    what.add_argument("--algorithm", default="vanilla", help="OCL algorithm: vanilla, er, mir, lwf, mas, alsar")
    what.add_argument("--model", default="mnistnet", help="model name (see ferret profile --help)")
    what.add_argument("--dataset", default="digits", help="digits, synthetic, mnist, cifar10, ... (local files)")
    what.add_argument("--data-root", default=None, help="folder of the data set's local files")
    what.add_argument(
        "--dataset-option",
        type=cli_type(parse_key_value),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="data-set option, repeatable (e.g. classes=5 for synthetic)",
    )
    what.add_argument("--stream", default="iid", help="iid, class-incremental, blurry, domain-incremental, ...")
    what.add_argument(
        "--stream-option",
        type=cli_type(parse_key_value),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="stream option, repeatable (e.g. tasks=5, sigma=0.25)",
    )
    what.add_argument(
        "--samples",
        type=cli_type(parse_positive_int),
        default=None,
        help="stream length (default: the training set once)",
    )
    what.add_argument(
        "--seed",
        type=cli_type(parse_non_negative_int),
        default=0,
        help="one seed for data order, weights and every choice",
    )

    timing = parser.add_argument_group("time")
    timing.add_argument("--arrival", default="fixed", help="arrival process: fixed, poisson, bursty or trace:FILE")
    timing.add_argument(
        "--arrival-interval",
        type=cli_type(parse_seconds),
        default=None,
        help="mean time between arrivals, e.g. 2ms (default: the slowest layer's forward, Ferret's td)",
    )
    timing.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile JSON giving step times (default: measured on --device)",
    )
    timing.add_argument(
        "--batch-profile",
        type=Path,
        action="append",
        default=[],
        help="the same model's profile at a larger batch (repeatable; with --profile): a step of B rows then "
        "costs a fitted fixed part + B × a per-row part instead of B one-row steps",
    )
    timing.add_argument(
        "--cost-batch",
        type=cli_type(parse_positive_int),
        default=16,
        help="without --profile, also profile at this batch to fit a step's fixed cost (1: steps cost B × one row)",
    )
    timing.add_argument("--device", default="cpu", help="cpu, cuda[:N] (train and measure there) or roofline:NAME")
    timing.add_argument(
        "--threads", type=cli_type(parse_positive_int), default=1, help="torch CPU threads for profiling and training"
    )
    timing.add_argument(
        "--decay", type=cli_type(parse_rate), default=1.0, help="data-value decay for the adaptation rate, per second"
    )

    frame = parser.add_argument_group("framework")
    frame.add_argument(
        "--batch-size", type=cli_type(parse_positive_int), default=10, help="N: data trained per step (B-Skip, Camel)"
    )
    frame.add_argument(
        "--framework-option",
        type=cli_type(parse_key_value),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of a registered (e.g. pipeline) framework, repeatable",
    )
    frame.add_argument(
        "--window", type=cli_type(parse_positive_int), default=50, help="B: latest untrained data kept (B-Skip, Camel)"
    )

    add_pipeline_arguments(parser)

    algo = parser.add_argument_group("algorithm")
    size = algo.add_mutually_exclusive_group()
    size.add_argument(
        "--buffer", type=cli_type(parse_bytes), default=None, help="replay buffer size in bytes, e.g. 1MiB"
    )
    size.add_argument(
        "--buffer-samples",
        type=cli_type(parse_positive_int),
        default=None,
        help="replay buffer size in samples (default: 5000)",
    )
    algo.add_argument(
        "--replay-batch",
        type=cli_type(parse_positive_int),
        default=None,
        help="replayed rows per step (default: as many as new rows)",
    )
    algo.add_argument(
        "--mir-candidates", type=cli_type(parse_positive_int), default=50, help="MIR: buffer candidates scored per step"
    )
    algo.add_argument(
        "--lwf-alpha", type=cli_type(parse_non_negative_float), default=1.0, help="LwF: distillation weight"
    )
    algo.add_argument(
        "--lwf-temperature", type=cli_type(parse_positive_float), default=2.0, help="LwF: softmax temperature"
    )
    algo.add_argument("--mas-lambda", type=cli_type(parse_non_negative_float), default=1.0, help="MAS: penalty weight")
    algo.add_argument(
        "--consolidate-every",
        type=cli_type(parse_non_negative_int),
        default=0,
        help="LwF/MAS: also consolidate every this many trained samples (0: at task boundaries only)",
    )
    add_budget_arguments(parser, size)
    algo.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer")
    algo.add_argument("--lr", type=cli_type(parse_positive_float), default=1e-3, help="learning rate")
    algo.add_argument("--momentum", type=cli_type(parse_non_negative_float), default=0.0, help="SGD momentum")

    out = parser.add_argument_group("output")
    out.add_argument(
        "--eval-every",
        type=cli_type(parse_non_negative_int),
        default=100,
        help="test every E arrivals (0: only at the end)",
    )
    out.add_argument("--baseline", type=Path, default=None, help="run folder to compare with (oagm, tagm)")
    out.add_argument("--out", type=Path, required=True, help="output folder")


def add_budget_arguments(parser: argparse.ArgumentParser, buffer_size: argparse._MutuallyExclusiveGroup) -> None:
    """Budgeted OCL (aL-SAR, SPEC §10): byte and FLOP budgets, replay sampler, layer freezing."""
    budget = parser.add_argument_group("budgets (SPEC §10)")
    buffer_size.add_argument(
        "--memory-budget",
        type=cli_type(parse_bytes),
        default=None,
        help="total stored bytes (model, optimizer, extra state, window, replay at its stored dtype); "
        "the replay memory gets what is left, e.g. 2MiB",
    )
    budget.add_argument(
        "--compute-budget",
        type=cli_type(parse_flops),
        default=None,
        help="training FLOPs per stream sample, e.g. 250M (the budgeted framework, the default with it)",
    )
    budget.add_argument(
        "--spend-saved-compute",
        action="store_true",
        help="FLOPs that freezing saves buy further steps within the compute budget",
    )
    budget.add_argument(
        "--sampler", default=None, help="replay sampler: uniform, class-balanced, similarity-aware (er, mir, alsar)"
    )
    budget.add_argument(
        "--sampler-temperature",
        type=cli_type(parse_positive_float),
        default=2.0,
        help="similarity-aware: softmax temperature T",
    )
    budget.add_argument(
        "--freezing", choices=("none", "adaptive"), default=None, help="adaptive layer freezing (alsar: adaptive)"
    )
    budget.add_argument(
        "--unfreeze-rate",
        type=cli_type(parse_non_negative_float),
        default=0.25,
        help="adaptive freezing: probability that a batch trains every layer",
    )


def budget_fields(args: argparse.Namespace) -> tuple[dict[str, object], dict[str, object]]:
    """(AlgorithmConfig fields, RunSpec fields) of the budget flags; picks the budgeted framework."""
    if args.compute_budget is not None and args.framework is None and args.plan is None:
        args.framework = "budgeted"
    if args.sampler is not None and args.algorithm not in ("er", "mir", "alsar"):
        raise FerretError(
            f"--sampler applies to algorithms with a replay memory (er, mir, alsar), not {args.algorithm}"
        )
    algorithm = {
        "sampler": args.sampler,
        "sampler_temperature": args.sampler_temperature,
        "freezing": args.freezing,
        "unfreeze_rate": args.unfreeze_rate,
    }
    spec = {
        "memory_budget_bytes": args.memory_budget,
        "compute_budget_flops": args.compute_budget,
        "spend_saved_compute": args.spend_saved_compute,
    }
    return algorithm, spec


def run(args: argparse.Namespace) -> int:
    from analysis.plots_run import plot_accuracy_curves
    from executor.metrics import compare_to_baseline, online_accuracy_curve, seen_accuracy_curve
    from executor.ocl.algorithms import AlgorithmConfig
    from executor.ocl.experiment import RunSpec, experiment_summary, prepare, run_experiment
    from executor.ocl.frameworks import FrameworkOptions
    from executor.ocl.learner import OptimizerConfig

    baseline = read_baseline(args.baseline) if args.baseline is not None else None
    budget_algorithm, budget_spec = budget_fields(args)
    plan = resolve_pipeline(args)
    with atomic_dir(args.out) as staging:
        spec = RunSpec(
            framework=args.framework,
            algorithm=AlgorithmConfig(
                name=args.algorithm,
                buffer_samples=args.buffer_samples or AlgorithmConfig.buffer_samples,
                replay_batch=args.replay_batch,
                mir_candidates=args.mir_candidates,
                lwf_alpha=args.lwf_alpha,
                lwf_temperature=args.lwf_temperature,
                mas_lambda=args.mas_lambda,
                consolidate_every=args.consolidate_every,
                **budget_algorithm,  # type: ignore[arg-type]
            ),
            buffer_bytes=args.buffer,
            framework_options=FrameworkOptions(
                batch_size=args.batch_size, window=args.window, extra=pipeline_options(args, staging)
            ),
            optimizer=OptimizerConfig(name=args.optimizer, lr=args.lr, momentum=args.momentum),
            dataset=args.dataset,
            data_root=args.data_root,
            dataset_options=dict(args.dataset_option),
            stream=args.stream,
            stream_options=dict(args.stream_option),
            model=args.model,
            arrival=args.arrival,
            # A plan was made for a stream: without --arrival-interval, data arrive as it assumed.
            arrival_interval_s=args.arrival_interval
            if plan is None
            else args.arrival_interval or plan.arrival_interval_s,
            samples=args.samples,
            seed=args.seed,
            eval_every=args.eval_every,
            profile_path=None if args.profile is None else str(args.profile),
            batch_profile_paths=tuple(str(p) for p in args.batch_profile),
            cost_batch=args.cost_batch,
            device=args.device,
            threads=args.threads,
            progress=True,
            **budget_spec,  # type: ignore[arg-type]
        )
        experiment = prepare(spec)
        result = run_experiment(experiment)
        summary = experiment_summary(experiment, result, args.decay)
        if baseline is not None:
            summary.update(compare_to_baseline(summary, baseline))
            summary["baseline"] = str(args.baseline)
        online = online_accuracy_curve(result.correct)
        test = seen_accuracy_curve(result.group_correct, result.group_total, result.seen)
        if plan is not None:
            from sim.chrome import write_chrome_trace
            from sim.trace import read_trace

            write_chrome_trace(read_trace(staging / MEASURED_TRACE), staging / "chrome_trace.json", 250_000)
        write_config(
            staging, args, arrival_interval_s=experiment.arrival_interval_s, buffer_samples=summary["buffer_samples"]
        )
        write_summary(staging, summary)
        write_metrics_csv(staging / "metrics.csv", result, online, test)
        title = f"{summary['framework']} / {args.algorithm} — {summary['dataset']} ({summary['stream']}), {args.model}"
        plot_accuracy_curves(staging / "accuracy.png", online, result.checkpoint_samples, test, title)
    print_summary(summary, args.out)
    return 0
