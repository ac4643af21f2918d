"""Who this process is in a distributed run, read from the launcher's environment.

torchrun and torch's elastic agent (which `ferret run --mode distributed --nproc D` starts
itself) give every rank `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `GROUP_RANK`
(the node), `MASTER_ADDR` and `MASTER_PORT`. `RankContext.from_env` reads them once;
`join` opens the default process group (NCCL where CUDA is available, gloo otherwise, or
what `--backend` says) and, on a GPU, pins the rank to `cuda:LOCAL_RANK` first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from executor.distributed.faults import die_with_parent
from planner.errors import FerretError

BACKENDS = ("gloo", "nccl")
# A rank can wait for its next message as long as the stream is quiet (and a gloo operation
# that times out closes its connection for good), so idle waits must never time out; a dead
# peer is noticed through its closed connection instead (faults.py).
IDLE_TIMEOUT = timedelta(days=7)
_REQUIRED = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def under_launcher(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a rank started by torchrun or the elastic agent."""
    env = os.environ if env is None else env
    return all(name in env for name in _REQUIRED)


def choose_backend(requested: str | None = None) -> str:
    """`requested`, else NCCL where CUDA is available and gloo otherwise."""
    if requested is None:
        return "nccl" if torch.cuda.is_available() else "gloo"
    if requested not in BACKENDS:
        raise FerretError(f"unknown backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    if requested == "nccl" and not torch.cuda.is_available():
        raise FerretError("backend nccl needs CUDA, which this machine does not have; use --backend gloo")
    return requested


@dataclass(frozen=True)
class RankContext:
    """This rank's place in the run and the device its tensors live on."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node: int
    master_addr: str
    master_port: int
    backend: str
    device: torch.device

    @classmethod
    def from_env(cls, backend: str | None = None, env: Mapping[str, str] | None = None) -> RankContext:
        env = os.environ if env is None else env
        missing = [name for name in _REQUIRED if name not in env]
        if missing:
            raise FerretError(
                f"not started as a rank ({', '.join(missing)} unset): run under torchrun, or give --nproc D"
            )
        try:
            rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
            local_rank = int(env.get("LOCAL_RANK", env["RANK"]))
            local_world = int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"]))
            node = int(env.get("GROUP_RANK", "0"))
            port = int(env["MASTER_PORT"])
        except ValueError as exc:
            raise FerretError(f"malformed launcher environment: {exc}") from None
        if not 0 <= rank < world:
            raise FerretError(f"RANK={rank} is outside WORLD_SIZE={world}")
        chosen = choose_backend(backend)
        device = torch.device("cuda", local_rank) if chosen == "nccl" else torch.device("cpu")
        return cls(rank, world, local_rank, local_world, node, env["MASTER_ADDR"], port, chosen, device)

    def join(self) -> None:
        """Open the default process group through the launcher's store (all ranks must call it).
        From here on the rank dies with the process that started it (`faults.die_with_parent`)."""
        die_with_parent()
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group(
            self.backend,
            init_method="env://",
            rank=self.rank,
            world_size=self.world_size,
            timeout=IDLE_TIMEOUT,
        )

    @staticmethod
    def leave() -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
