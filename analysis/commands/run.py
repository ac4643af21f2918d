"""`ferret run`: one stream through one framework and OCL algorithm, in virtual time."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

from analysis.output import write_config, write_summary
from analysis.sim_inputs import add_sim_config_arguments, sim_config_from_args
from analysis.units import (
    cli_type,
    format_bytes,
    format_seconds,
    parse_bytes,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_positive_float,
    parse_positive_int,
    parse_rate,
    parse_seconds,
)
from planner.errors import FerretError
from planner.fileio import atomic_dir, read_json

# A help text that mentions %(default) stops argparse from appending "(default: None)"; this
# suffix formats to nothing, for options whose help already says what their absence means.
KEEP_HELP = "%(default).0s"

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
COMPENSATION_NAMES = "none, step-aware, gap-aware, fisher, iter-fisher"
COMPENSATION_SETTINGS = ("lambda0", "nu", "alpha", "eta_lambda", "gap_ema")
MEASURED_TRACE = "trace.jsonl"


def key_value(text: str) -> tuple[str, Any]:
    """`tasks=5` → ("tasks", 5); values become int, float, bool or stay text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"invalid option {text!r} (expected KEY=VALUE, e.g. tasks=5)")
    raw = raw.strip()
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
    return key.strip().replace("-", "_"), value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what runs")
    what.add_argument(
        "--framework",
        default=None,
        help="oracle (default), 1-skip, random-n, last-n, camel; pipeline with --plan" + KEEP_HELP,
    )
    what.add_argument("--algorithm", default="vanilla", help="OCL algorithm: vanilla, er, mir, lwf, mas")
    what.add_argument("--model", default="mnistnet", help="model name (see ferret profile --help)")
    what.add_argument("--dataset", default="digits", help="digits, synthetic, mnist, cifar10, ... (local files)")
    what.add_argument("--data-root", default=None, help="folder of the data set's local files" + KEEP_HELP)
    what.add_argument(
        "--dataset-option",
        type=cli_type(key_value),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="data-set option, repeatable (e.g. classes=5 for synthetic)" + KEEP_HELP,
    )
    what.add_argument("--stream", default="iid", help="iid, class-incremental, blurry, domain-incremental, ...")
    what.add_argument(
        "--stream-option",
        type=cli_type(key_value),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="stream option, repeatable (e.g. tasks=5, sigma=0.25)" + KEEP_HELP,
    )
    what.add_argument(
        "--samples",
        type=cli_type(parse_positive_int),
        default=None,
        help="stream length (default: the training set once)" + KEEP_HELP,
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
        help="mean time between arrivals, e.g. 2ms (default: the slowest layer's forward, Ferret's td)" + KEEP_HELP,
    )
    timing.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile JSON giving step times (default: measured on --device)" + KEEP_HELP,
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
        type=cli_type(key_value),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of a registered (e.g. pipeline) framework, repeatable" + KEEP_HELP,
    )
    frame.add_argument(
        "--window", type=cli_type(parse_positive_int), default=50, help="B: latest untrained data kept (B-Skip, Camel)"
    )

    pipe = parser.add_argument_group("pipeline (--plan)")
    pipe.add_argument(
        "--plan", type=Path, default=None, help="plan JSON from `ferret plan`: run its pipeline" + KEEP_HELP
    )
    pipe.add_argument(
        "--mode", default="replay", help="how the pipeline runs: replay (one process follows the twin's schedule)"
    )
    pipe.add_argument("--compensation", default="none", help=f"stale-gradient compensation: {COMPENSATION_NAMES}")
    pipe.add_argument(
        "--compensation-option",
        type=cli_type(key_value),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="compensator setting, repeatable: lambda0, nu, alpha, eta_lambda, gap_ema (SPEC §5)" + KEEP_HELP,
    )
    pipe.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="follow this trace file (jsonl/csv, e.g. from ferret simulate) instead of simulating" + KEEP_HELP,
    )
    add_sim_config_arguments(parser)

    algo = parser.add_argument_group("algorithm")
    size = algo.add_mutually_exclusive_group()
    size.add_argument(
        "--buffer", type=cli_type(parse_bytes), default=None, help="replay buffer size in bytes, e.g. 1MiB" + KEEP_HELP
    )
    size.add_argument(
        "--buffer-samples",
        type=cli_type(parse_positive_int),
        default=None,
        help="replay buffer size in samples (default: 5000)" + KEEP_HELP,
    )
    algo.add_argument(
        "--replay-batch",
        type=cli_type(parse_positive_int),
        default=None,
        help="replayed rows per step (default: as many as new rows)" + KEEP_HELP,
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
    out.add_argument("--baseline", type=Path, default=None, help="run folder to compare with (oagm, tagm)" + KEEP_HELP)
    out.add_argument("--out", type=Path, required=True, help="output folder" + KEEP_HELP)


def run(args: argparse.Namespace) -> int:
    import torch

    from analysis.plots_run import plot_accuracy_curves
    from executor.metrics import compare_to_baseline, online_accuracy_curve, seen_accuracy_curve
    from executor.ocl.algorithms import AlgorithmConfig
    from executor.ocl.experiment import RunSpec, experiment_summary, prepare, run_experiment
    from executor.ocl.frameworks import FrameworkOptions
    from executor.ocl.learner import OptimizerConfig

    torch.set_num_threads(args.threads)
    baseline = read_baseline(args.baseline) if args.baseline is not None else None
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
            progress=True,
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


def resolve_pipeline(args: argparse.Namespace) -> Any:
    """With --plan: the plan (read early for its arrival interval) and framework `pipeline`;
    without: the pipeline flags are refused rather than ignored. Sets `args.framework`."""
    from planner.plan import Plan

    given = [flag for flag in PIPELINE_FLAGS if getattr(args, flag, None) not in (None, [], "none", "replay")]
    if args.plan is None:
        if given:
            raise FerretError(f"--{given[0].replace('_', '-')} applies to pipeline runs only (give --plan plan.json)")
        args.framework = args.framework or "oracle"
        return None
    if args.framework not in (None, "pipeline"):
        raise FerretError(f"--plan runs the plan's pipeline; it does not combine with --framework {args.framework}")
    if args.framework_option:
        raise FerretError(
            "--plan takes its settings from --compensation/--trace/simulator flags, not --framework-option"
        )
    args.framework = "pipeline"
    return Plan.load(args.plan)


PIPELINE_FLAGS = (
    "mode",
    "compensation",
    "compensation_option",
    "trace",
    "sim_config",
    "exclusive_devices",
    "concurrency",
    "slowdown",
    "op_overhead",
    "update_time",
    "link_latency",
    "link_bandwidth",
    "jitter",
    "input_buffer",
    "transient_memory",
    "optimizer_state_ratio",
    "trace_memory",
)


def pipeline_options(args: argparse.Namespace, staging: Path) -> dict[str, Any]:
    """`FrameworkOptions.extra`: the user's --framework-option, or the pipeline's settings (its
    measured op trace written into the staging folder, so it lands with the other outputs)."""
    if args.plan is None:
        return dict(args.framework_option)
    settings = dict(args.compensation_option)
    unknown = sorted(set(settings) - set(COMPENSATION_SETTINGS))
    if unknown:
        raise FerretError(
            f"--compensation-option {unknown[0]}: unknown setting; choose {', '.join(COMPENSATION_SETTINGS)}"
        )
    return {
        "plan": str(args.plan),
        "mode": args.mode,
        "compensation": args.compensation,
        **settings,
        "trace": None if args.trace is None else str(args.trace),
        "sim_config": sim_config_from_args(args),
        "measured_trace": str(staging / MEASURED_TRACE),
    }


def read_baseline(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json" if folder.is_dir() else folder
    summary = read_json(path, "baseline summary")
    needed = ("online_accuracy", "test_accuracy", "measured_peak_memory_bytes")
    if not isinstance(summary, dict) or any(not isinstance(summary.get(k), int | float) for k in needed):
        raise FerretError(f"baseline summary {path} lacks numeric {', '.join(needed)}; is it a ferret run folder?")
    if summary["measured_peak_memory_bytes"] <= 0:
        raise FerretError(f"baseline summary {path}: measured_peak_memory_bytes must be positive")
    return summary


def write_metrics_csv(path: Path, result: Any, online: Any, test: Any) -> None:
    """One row per checkpoint: samples seen, virtual time, online and test accuracy, data trained."""
    trained_at = result.trained_at_s
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["samples", "time_s", "online_accuracy", "test_accuracy", "trained"])
        for k, samples in enumerate(result.checkpoint_samples.tolist()):
            t = float(result.checkpoint_time_s[k])
            trained = int((trained_at <= t).sum())
            test_value = "" if not math.isfinite(test[k]) else f"{test[k]:.4f}"
            writer.writerow([samples, f"{t:.9g}", f"{online[samples - 1]:.4f}", test_value, trained])


def print_summary(summary: dict[str, Any], out: Path) -> None:
    def pct(value: Any) -> str:
        return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f} %"

    print(
        f"{summary['framework']} / {summary['algorithm']} on {summary['dataset']} ({summary['stream']}, "
        f"{summary['samples']} samples every {format_seconds(summary['arrival_interval_s'])}; "
        f"a step on one sample takes {format_seconds(summary['sample_step_s'])}"
        + (f", each further row {format_seconds(summary['row_step_s'])})" if summary.get("step_fixed_s") else ")")
    )
    print(
        f"  online accuracy {pct(summary['online_accuracy'])}   test accuracy {pct(summary['test_accuracy'])}   "
        f"A_AUC {pct(summary['a_auc'])}   forgetting {pct(summary['forgetting'])}"
    )
    print(
        f"  trained {summary['trained']}, skipped {summary['skipped']} in {summary['steps']} steps; "
        f"{summary['train_flops'] / 1e9:.3g} GFLOPs; peak memory {format_bytes(summary['measured_peak_memory_bytes'])}"
    )
    if "mode" in summary:  # a pipeline run
        print(
            f"  {summary['strategy']} plan, P = {summary['num_stages']}, {summary['active_workers']} workers, "
            f"{summary['mode']} with {summary['compensation']} compensation; mean staleness "
            f"{summary['mean_staleness'] or 0:.2f}; weights + activations peak "
            f"{format_bytes(summary['measured_weights_activations_peak_bytes'])} "
            f"(closed form {format_bytes(summary['predicted_memory_bytes'])})"
        )
    if "oagm" in summary:
        print(f"  vs baseline {summary['baseline']}: oagm {summary['oagm']:.3f}, tagm {summary['tagm']:.3f}")
    extra = ", trace.jsonl, chrome_trace.json" if "mode" in summary else ""
    print(f"  wrote {out}/ (summary.json, config.json, metrics.csv, accuracy.png{extra})")
