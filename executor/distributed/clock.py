"""One clock for every rank: each rank's offset to rank 0's monotonic clock, with its uncertainty.

Ranks on one machine read the same `CLOCK_MONOTONIC` (Python's `perf_counter` on Linux), so
their offset is exactly 0 — "one machine" meaning the same host name and the same boot id. A
rank on another machine estimates it with `rounds` ping-pongs to rank 0 at start-up (NTP's
rule): it sends at `t1`, rank 0 answers with its clock `t0`, the answer lands at `t2`; then
`offset = t0 − (t1 + t2)/2` is exact up to the round trip's asymmetry, at most
`(t2 − t1)/2`, and the round with the shortest trip is kept. Rank 0's clock plus nothing is
the run's clock; `to_reference(t)` maps a local reading onto it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from executor.distributed.context import RankContext


@dataclass(frozen=True)
class ClockOffset:
    """Add `offset_s` to this rank's `perf_counter` to read rank 0's; wrong by at most `uncertainty_s`."""

    offset_s: float = 0.0
    uncertainty_s: float = 0.0
    same_host: bool = True
    rounds: int = 0

    def to_reference(self, t: float) -> float:
        return t + self.offset_s

    def to_json(self) -> dict[str, float | bool | int]:
        return {
            "offset_s": self.offset_s,
            "uncertainty_s": self.uncertainty_s,
            "same_host": self.same_host,
            "rounds": self.rounds,
        }


def host_identity() -> str | None:
    """Host name and boot id: two processes with the same one share `CLOCK_MONOTONIC`
    (None where there is no boot id to compare: such a rank always measures its offset)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None
    return f"{socket.gethostname()}/{boot}"


def sync_clocks(
    ctx: RankContext, rounds: int = 8, force_ping: bool = False, group: dist.ProcessGroup | None = None
) -> ClockOffset:
    """Every rank's offset to rank 0 (collective: all ranks call it, before the channels open).
    `force_ping` measures even on rank 0's machine (tests: the estimate must come out ≈ 0).
    `group`: a gloo group over every rank (the default group when it is gloo)."""
    identities: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(identities, host_identity(), group=group)
    same = [identities[r] is not None and identities[r] == identities[0] for r in range(ctx.world_size)]
    result = ClockOffset()
    ping = torch.zeros(1, dtype=torch.float64)
    for r in range(1, ctx.world_size):
        if same[r] and not force_ping:
            continue
        if ctx.rank == 0:
            for _ in range(rounds):
                dist.recv(ping, r, group=group)
                ping[0] = time.perf_counter()
                dist.send(ping, r, group=group)
        elif ctx.rank == r:
            best = (float("inf"), 0.0)
            for _ in range(rounds):
                t1 = time.perf_counter()
                dist.send(ping, 0, group=group)
                dist.recv(ping, 0, group=group)
                t2 = time.perf_counter()
                best = min(best, (t2 - t1, float(ping[0]) - 0.5 * (t1 + t2)))
            result = ClockOffset(best[1], 0.5 * best[0], same_host=same[r], rounds=rounds)
    dist.barrier(group=group)
    return result
