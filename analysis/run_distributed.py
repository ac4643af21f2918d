"""`ferret run --plan … --mode distributed`: start the ranks here, or be one of them.

Not yet a rank (no torchrun variables): check what can be refused, start `--nproc` ranks of
this very command through torch's elastic agent, wait, and report the first failure in one
line. A rank runs the command normally; only rank 0 writes the outputs (through the staging
folder), the others keep theirs in a scratch folder that vanishes.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from planner.errors import FerretError
from planner.fileio import atomic_dir

if TYPE_CHECKING:
    from executor.ocl.frameworks.pipeline import PipelineOptions


def distributed(pipeline: PipelineOptions | None) -> TypeGuard[PipelineOptions]:
    return pipeline is not None and pipeline.mode == "distributed"


def launch_ranks(args: argparse.Namespace, pipeline: PipelineOptions) -> bool:
    """Start the ranks and wait for them (True), or return False: this process is a rank."""
    from analysis.config_args import config_values
    from executor.distributed.context import under_launcher
    from executor.distributed.launch import launch_local
    from executor.distributed.mode import check_launch
    from executor.ocl.algorithms import AlgorithmConfig

    if under_launcher():
        return False
    nproc = pipeline.distributed.nproc
    if nproc is None:
        raise FerretError(
            "--mode distributed starts its ranks with --nproc D (one per device the plan uses), or runs under torchrun"
        )
    check_launch(pipeline, AlgorithmConfig(**config_values(args, AlgorithmConfig)), nproc)
    launch_local(["-m", "analysis", *args._argv], nproc)
    return True


@contextlib.contextmanager
def output_folder(out: Path, pipeline: PipelineOptions | None) -> Iterator[Path]:
    """Where this process writes its outputs: the staging folder of `out`, except on a rank
    other than 0 of a distributed run (a scratch folder nobody reads)."""
    from executor.distributed.rank import is_output_rank

    if distributed(pipeline) and not is_output_rank():
        with tempfile.TemporaryDirectory(prefix="ferret-rank-") as scratch:
            yield Path(scratch)
    else:
        with atomic_dir(out) as staging:
            yield staging
