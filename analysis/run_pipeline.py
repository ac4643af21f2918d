"""`ferret run --plan`: the pipeline's flags, and turning them into the pipeline framework's options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from analysis.sim_inputs import add_sim_config_arguments, given_sim_flags, sim_config_from_args
from analysis.units import cli_type, parse_key_value
from planner.errors import FerretError

COMPENSATION_NAMES = "none, step-aware, gap-aware, fisher, iter-fisher"
COMPENSATION_SETTINGS = ("lambda0", "nu", "alpha", "eta_lambda", "gap_ema")
MEASURED_TRACE = "trace.jsonl"


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    pipe = parser.add_argument_group("pipeline (--plan)")
    pipe.add_argument("--plan", type=Path, default=None, help="plan JSON from `ferret plan`: run its pipeline")
    pipe.add_argument(
        "--mode", default="replay", help="how the pipeline runs: replay (one process follows the twin's schedule)"
    )
    pipe.add_argument("--compensation", default="none", help=f"stale-gradient compensation: {COMPENSATION_NAMES}")
    pipe.add_argument(
        "--compensation-option",
        type=cli_type(parse_key_value),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="compensator setting, repeatable: lambda0, nu, alpha, eta_lambda, gap_ema (SPEC §5)",
    )
    pipe.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="follow this trace file (jsonl/csv, e.g. from ferret simulate) instead of simulating",
    )
    add_sim_config_arguments(parser)


def resolve_pipeline(args: argparse.Namespace) -> Any:
    """With --plan: the plan (read early for its arrival interval) and framework `pipeline`;
    without: the pipeline flags are refused rather than ignored. Sets `args.framework`."""
    from planner.plan import Plan

    given = [
        f"--{flag.replace('_', '-')}"
        for flag in PIPELINE_FLAGS
        if getattr(args, flag) not in (None, [], "none", "replay")
    ]
    given += given_sim_flags(args)
    if args.plan is None:
        if given:
            raise FerretError(f"{given[0]} applies to pipeline runs only (give --plan plan.json)")
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


PIPELINE_FLAGS = ("mode", "compensation", "compensation_option", "trace")


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
