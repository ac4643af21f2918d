"""Rank programs for the transport tests, and a launcher entry that runs them.

    python -m tests.executor.distributed.ranks launch NPROC PROGRAM OUT [ARG]

starts NPROC ranks of `python -m tests.executor.distributed.ranks PROGRAM OUT [ARG]` through
`launch_local` and exits 0, or prints the launcher's one line and exits 1 (130 on Ctrl-C).
Programs (each rank writes OUT/rank<r>.json when it gets that far):

* `echo` — every rank sends `ARG` messages to every peer, shapes and dtypes varying with the
  index (some too big for one frame), and checks that each peer's messages arrive complete and in order; clocks are synced
  with forced ping-pongs first (same host: the estimate must be ≈ 0).
* `kill` / `raise` — all ranks exchange messages forever; rank ARG SIGKILLs itself (or raises)
  once it has received a few. Every other rank must notice and exit.
* `wait` — every rank blocks in `receive()` for good (Ctrl-C tests).
* `stuck` — every rank waits for a message nobody sends, watched by a watchdog of ARG
  seconds (a deadlock): the watchdog must end the run.
* `stall` — rank 1 waits for a message, watched by a watchdog of ARG seconds, while rank 0
  is busy elsewhere (unwatched) and never sends it: the launcher's line must say both.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch

from executor.distributed.clock import sync_clocks
from executor.distributed.context import RankContext
from executor.distributed.faults import run_and_exit
from executor.distributed.launch import launch_local
from executor.distributed.transport import TorchTransport
from executor.distributed.watchdog import Watchdog
from executor.pipeline.transport import Message
from planner.errors import FerretError

DATA = 7


def payload(src: int, dst: int, i: int) -> Message:
    """Message `i` from `src` to `dst`: its content says where it belongs, its shape varies."""
    rows = 1 + (i % 3)
    columns = 1200 if i % 5 == 4 else 2 + i % 4  # every 5th too big for one frame: a payload of its own
    x = torch.full((rows, columns), float(1000 * src + 100 * dst + i))
    tensors: tuple[torch.Tensor, ...] = (x,) if i % 2 else (x, torch.arange(rows, dtype=torch.int64) + i)
    return Message(DATA, (src, dst, i), tensors)


def check(src: int, dst: int, i: int, got: Message) -> None:
    want = payload(src, dst, i)
    assert got.kind == want.kind and got.fields[:3] == want.fields, (got.fields, want.fields)
    assert len(got.tensors) == len(want.tensors)
    for a, b in zip(got.tensors, want.tensors, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), (src, dst, i)


def echo(ctx: RankContext, out: Path, count: int) -> int:
    clock = sync_clocks(ctx, rounds=4, force_ping=True)
    transport = TorchTransport(ctx)
    peers = [r for r in range(ctx.world_size) if r != ctx.rank]
    for i in range(count):
        for dst in peers:
            transport.send(dst, payload(ctx.rank, dst, i))
    seen = dict.fromkeys(peers, 0)
    while sum(seen.values()) < count * len(peers):
        got = transport.receive()
        assert got is not None
        src, message = got
        check(src, ctx.rank, seen[src], message)
        seen[src] += 1
    transport.close()
    result = {"received": seen, "clock": clock.to_json(), "sent_bytes": transport.sent_bytes}
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(result))
    return 0


def chatter(ctx: RankContext, out: Path, victim: int, how: str) -> int:
    transport = TorchTransport(ctx)
    peers = [r for r in range(ctx.world_size) if r != ctx.rank]
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({"pid": os.getpid()}))
    received = 0
    i = 0
    while True:
        for dst in peers:
            transport.send(dst, payload(ctx.rank, dst, i))
        i += 1
        while transport.receive(timeout=0.01) is not None:
            received += 1
        if ctx.rank == victim and received >= 4 * len(peers):
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise FerretError("the test asked this rank to fail")
        time.sleep(0.005)


def wait(ctx: RankContext, out: Path) -> int:
    transport = TorchTransport(ctx)
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({"pid": os.getpid()}))
    transport.receive()
    return 0


def stuck(ctx: RankContext, out: Path, limit_s: float) -> int:
    watchdog = Watchdog(ctx.rank, limit_s)
    watchdog.start()
    transport = TorchTransport(ctx)
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({"pid": os.getpid()}))
    with watchdog.waiting("a message nobody sends (the test's deadlock)"):
        transport.receive()
    return 0


def stall(ctx: RankContext, out: Path, limit_s: float) -> int:
    watchdog = Watchdog(ctx.rank, limit_s)
    watchdog.start()
    transport = TorchTransport(ctx)
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({"pid": os.getpid()}))
    if ctx.rank == 0:
        busy_elsewhere()
    with watchdog.waiting("a message rank 0 never sends (the test's stall)"):
        transport.receive()
    return 0


def busy_elsewhere() -> None:
    time.sleep(600)  # computing, as far as the watchdog knows: never overdue


def rank_main(program: str, out: Path, arg: str | None) -> None:
    ctx = RankContext.from_env()

    def body() -> int:
        ctx.join()
        if program == "echo":
            return echo(ctx, out, int(arg or 10))
        if program in ("kill", "raise"):
            return chatter(ctx, out, int(arg or 1), program)
        if program == "wait":
            return wait(ctx, out)
        if program == "stuck":
            return stuck(ctx, out, float(arg or 2))
        if program == "stall":
            return stall(ctx, out, float(arg or 2))
        raise SystemExit(f"unknown program {program}")

    run_and_exit(ctx.rank, body)


def main(argv: list[str]) -> int:
    if argv[0] == "launch":
        nproc, rest = int(argv[1]), argv[2:]
        try:
            launch_local(["-m", "tests.executor.distributed.ranks", *rest], nproc)
        except FerretError as exc:
            print(f"launcher: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("launcher: interrupted", file=sys.stderr)
            return 130
        return 0
    torch.set_num_threads(1)
    rank_main(argv[0], Path(argv[1]), argv[2] if len(argv) > 2 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
