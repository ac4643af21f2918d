"""`ferret run --plan`: the pipeline's flags (made from `PipelineOptions`, `CompensationConfig` and
`SimConfig`), and the typed `PipelineOptions` they give, with the plan loaded once."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.config_args import add_config_arguments, config_values, given_flags
from analysis.sim_inputs import (
    add_costs_argument,
    add_sim_config_arguments,
    costs_from_args,
    given_sim_flags,
    sim_config_from_args,
)
from planner.errors import FerretError
from planner.plan import Plan
from sim.simulate import check_jitter_source

if TYPE_CHECKING:
    from executor.ocl.frameworks.pipeline import PipelineOptions

PIPELINE_TITLE = "pipeline (--plan)"
MEASURED_TRACE = "trace.jsonl"


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    from executor.compensation import CompensationConfig
    from executor.distributed.options import DistributedOptions
    from executor.ocl.frameworks.pipeline import PipelineOptions

    add_config_arguments(parser, PipelineOptions, title=PIPELINE_TITLE)
    add_config_arguments(parser, CompensationConfig, title=PIPELINE_TITLE)
    add_config_arguments(parser, DistributedOptions)
    add_sim_config_arguments(parser)
    add_costs_argument(parser)


def pipeline_options(args: argparse.Namespace) -> PipelineOptions | None:
    """With --plan: the pipeline's options (plan loaded, every setting checked) and
    `args.framework = "pipeline"`; without: `None`, `args.framework` defaulted, and any pipeline
    flag refused rather than ignored."""
    from executor.compensation import CompensationConfig
    from executor.distributed.options import DistributedOptions
    from executor.ocl.frameworks.pipeline import PipelineOptions

    distributed_flags = given_flags(args, DistributedOptions)
    if args.plan is None:
        given = given_flags(args, PipelineOptions) + given_flags(args, CompensationConfig) + given_sim_flags(args)
        given += distributed_flags + (["--costs"] if args.costs is not None else [])
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
    if distributed_flags and args.mode != "distributed":
        raise FerretError(f"{distributed_flags[0]} applies to --mode distributed only")
    args.framework = "pipeline"
    distributed = DistributedOptions(**config_values(args, DistributedOptions))
    if distributed.checkpoint_every and distributed.checkpoint_dir is None:
        distributed = dataclasses.replace(
            distributed, checkpoint_dir=args.out.with_name(f"{args.out.name}.checkpoints")
        )
    if distributed.checkpoint_dir is not None and distributed.checkpoint_every:
        from executor.distributed.checkpoint import check_root

        check_root(distributed.checkpoint_dir, args.out)
    if distributed.resume is not None:
        from executor.distributed.checkpoint import latest

        latest(distributed.resume)  # a folder with no checkpoint is one line here, not one per rank
    sim_config, costs = sim_config_from_args(args), costs_from_args(args)
    check_jitter_source(sim_config, () if costs is None else costs.jitter_sequence)
    options = PipelineOptions(
        plan=Plan.load(args.plan),
        compensation=CompensationConfig(**config_values(args, CompensationConfig)),
        sim_config=sim_config,
        costs=costs,
        distributed=distributed,
        **config_values(args, PipelineOptions),
    )
    return options.validate()


def with_measured_trace(options: PipelineOptions | None, staging: Path) -> PipelineOptions | None:
    """The pipeline writes its measured op trace into the staging folder, beside the other outputs."""
    return None if options is None else dataclasses.replace(options, measured_trace=staging / MEASURED_TRACE)
