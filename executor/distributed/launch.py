"""Start the ranks of a one-machine run through torch's own launcher (torchrun's machinery).

`launch_local(argv, nproc)` runs `nproc` copies of `python argv…` under torch's elastic agent
(`torch.distributed.launcher.api.elastic_launch`, what `torchrun --standalone` uses): a c10d
rendezvous on a free port of 127.0.0.1, `RANK`/`WORLD_SIZE`/`LOCAL_RANK`/`MASTER_*` in each
rank's environment, no restarts. The ranks are fresh processes running the same command a
user would run under `torchrun` on many machines, so one code path serves both.

When a rank fails the agent stops the others (SIGTERM, then SIGKILL after `shutdown_s`) and
`launch_local` raises `FerretError` with one line naming the rank that failed first and how —
its exit code or signal — then, after "; then", how every other rank ended (a stall has two
sides: the rank whose watchdog fired, and what the rank it waited for was doing — "stopped by
SIGTERM in …" says where). Ranks that only reacted to it (they lost a peer, or were stopped)
exit with their own codes (faults.py) and are not blamed for it. Ctrl-C reaches every rank; the
launcher waits for them and raises `KeyboardInterrupt`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator, Sequence

from torch.distributed.elastic.multiprocessing import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from executor.distributed.faults import EXIT_INTERRUPTED, EXIT_PEER_LOST, LOCAL_LAUNCH
from planner.errors import FerretError

LOOPBACK = "127.0.0.1"


def launch_local(argv: Sequence[str], nproc: int, shutdown_s: int = 5, monitor_s: float = 0.1) -> None:
    """Run `nproc` ranks of `python argv…` on this machine; return when every rank exited 0."""
    if nproc < 1:
        raise FerretError(f"--nproc must be ≥ 1, got {nproc}")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"ferret-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"{LOOPBACK}:0",  # the agent hosts the store on a free port
        max_restarts=0,
        monitor_interval=monitor_s,
        local_addr=LOOPBACK,
        shutdown_timeout=shutdown_s,
    )
    try:
        with _quiet_agent(), _ranks_report_here():
            elastic_launch(config, sys.executable)(*argv)
    except ChildFailedError as exc:
        raise FerretError(describe_failures(exc.failures, nproc)) from None
    except SignalException as exc:
        raise KeyboardInterrupt(exc.sigval.name) from None


def root_failure(failures: dict[int, ProcessFailure]) -> tuple[int, ProcessFailure]:
    """The failure that caused the others: the earliest one that is not a reaction (a lost
    peer, a stop signal, or the SIGTERM the agent sends the survivors), else the earliest of
    all; ties go to the lower rank."""

    def reacting(failure: ProcessFailure) -> bool:  # the agent stops survivors with SIGTERM
        reactions = (EXIT_PEER_LOST, EXIT_INTERRUPTED, 128 + signal.SIGTERM, -signal.SIGTERM, -signal.SIGINT)
        return failure.exitcode in reactions

    ranked = sorted(failures.items(), key=lambda item: (reacting(item[1]), item[1].timestamp, item[0]))
    return ranked[0]


def describe_failures(failures: dict[int, ProcessFailure], nproc: int) -> str:
    """One line: the root failure first, then how every other rank ended, by rank (not a rank
    that says the same as the root — every rank refused the same input — nor one the agent's
    SIGTERM ended before it could catch it: still starting, it says nothing of a stall)."""
    rank, failure = root_failure(failures)
    cause = describe_failure(failure)
    others = [
        (r, describe_failure(f)) for r, f in sorted(failures.items()) if r != rank and f.exitcode != -signal.SIGTERM
    ]
    return f"rank {rank} of {nproc} failed: {cause}" + "".join(
        f"; then rank {r}: {said}" for r, said in others if said != cause
    )


def describe_failure(failure: ProcessFailure) -> str:
    if failure.exitcode < 0:
        return f"killed by {failure.signal_name()} (pid {failure.pid})"
    if isinstance(failure.message, str) and failure.message and failure.error_file_data.get("timestamp"):
        return failure.message  # the rank's own line, left for us (faults.tell_launcher)
    return f"exited with status {failure.exitcode} (pid {failure.pid}; its own message is above)"


@contextlib.contextmanager
def _ranks_report_here() -> Iterator[None]:
    """The ranks inherit this environment: they leave their last line to the launcher."""
    previous = os.environ.get(LOCAL_LAUNCH)
    os.environ[LOCAL_LAUNCH] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[LOCAL_LAUNCH]
        else:
            os.environ[LOCAL_LAUNCH] = previous


@contextlib.contextmanager
def _quiet_agent() -> Iterator[None]:
    """The agent logs its life at length; a failure is reported here in one line instead.
    (Each of its modules sets its own logger's level, so each is raised here.)"""
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("torch.distributed.elastic")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
