"""The settings of a distributed run (`ferret run --mode distributed …`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planner.errors import FerretError


@dataclass(frozen=True)
class DistributedOptions:
    """`nproc`: ranks to start on this machine (None: this process already is a rank, under
    torchrun). `backend`: gloo or nccl (None: nccl where CUDA is available). `streams`: CUDA
    streams per rank (ops of different stages overlap). `predict_all`: an inference forward
    for every datum no worker trains on. `follow_trace`: run each rank's ops in this trace's
    order instead of in real time (lockstep; bit-identical to the replay). `checkpoint_every`:
    write a checkpoint every that many arrivals (0: never) into `checkpoint_dir`. `resume`:
    continue from the newest checkpoint in that folder."""

    nproc: int | None = None
    backend: str | None = None
    streams: int = 1
    predict_all: bool = False
    follow_trace: Path | None = None
    checkpoint_every: int = 0
    checkpoint_dir: Path | None = None
    resume: Path | None = None

    def validate(self) -> DistributedOptions:
        if self.nproc is not None and self.nproc < 1:
            raise FerretError(f"--nproc must be ≥ 1, got {self.nproc}")
        if self.checkpoint_every < 0:
            raise FerretError(f"--checkpoint-every must be ≥ 0, got {self.checkpoint_every}")
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise FerretError("--checkpoint-every needs a folder for the checkpoints (--checkpoint-dir)")
        if self.follow_trace is not None and (self.checkpoint_every or self.resume is not None):
            raise FerretError("--follow-trace replays a whole trace; it does not combine with checkpoints")
        if self.follow_trace is not None and self.predict_all:
            raise FerretError("--predict-all is for real-time runs; a followed trace predicts nothing extra")
        return self
