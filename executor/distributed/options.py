"""The settings of a distributed run (`ferret run --plan plan.json --mode distributed …`).

Each field is its own `ferret run` flag (planner/config_field.py): the declaration below is the
flag's name, help, unit and bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from executor.distributed.watchdog import DEFAULT_LIMIT_S
from planner.config_field import config_field
from planner.errors import FerretError
from planner.quantities import MAX_DEVICES, MAX_STREAMS

GROUP = "distributed (--mode distributed)"


@dataclass(frozen=True)
class DistributedOptions:
    """The settings of `--mode distributed`; each field is one `ferret run` flag with its help and bounds.

    Carried by the pipeline framework's options (`PipelineOptions.distributed`) and read by every rank.
    """

    nproc: int | None = config_field(
        None,
        help="ranks to start on this machine, one per device the plan uses (omit under torchrun)",
        unit="int",
        ge=1,
        le=MAX_DEVICES,
        group=GROUP,
    )
    backend: str | None = config_field(
        None,
        help="torch.distributed backend (default: nccl where CUDA is available, else gloo)",
        choices=("gloo", "nccl"),
        group=GROUP,
    )
    streams: int = config_field(
        1,
        help="CUDA streams per rank: stages on one rank overlap on a GPU",
        unit="int",
        ge=1,
        le=MAX_STREAMS,
        group=GROUP,
    )
    predict_all: bool = config_field(
        False,
        help="also predict the data no worker trains on (dropped, removed workers) by an inference forward",
        unit="flag",
        group=GROUP,
    )
    follow_trace: Path | None = config_field(
        None,
        help="lockstep: run each rank's ops in this trace's order, no clock (bit-identical to --mode replay)",
        unit="path",
        group=GROUP,
    )
    checkpoint_every: int = config_field(
        0, help="checkpoint every this many arrivals (0: never)", unit="int", ge=0, group=GROUP
    )
    checkpoint_dir: Path | None = config_field(
        None, help="folder of the checkpoints (default: OUT.checkpoints beside --out)", unit="path", group=GROUP
    )
    resume: Path | None = config_field(
        None, help="resume from the newest checkpoint in this folder", unit="path", group=GROUP
    )
    watchdog_s: float = config_field(
        DEFAULT_LIMIT_S,
        help="a rank that waits this long for the others (beyond the stream's longest gap between arrivals) "
        "ends the run with one line naming what it waited for (0: wait for ever)",
        unit="seconds",
        ge=0,
        flag="watchdog",
        group=GROUP,
    )

    def validate(self) -> DistributedOptions:
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise FerretError("--checkpoint-every needs a folder for the checkpoints (--checkpoint-dir)")
        if self.follow_trace is not None and (self.checkpoint_every or self.resume is not None):
            raise FerretError("--follow-trace replays a whole trace; it does not combine with checkpoints")
        if self.follow_trace is not None and self.predict_all:
            raise FerretError("--predict-all is for real-time runs; a followed trace predicts nothing extra")
        return self
