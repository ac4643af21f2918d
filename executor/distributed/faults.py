"""How a rank fails: one line naming the rank and what happened, a non-zero exit, never a hang.

A rank learns that a peer died from the peer's closed connection: a blocked gloo receive
raises "Connection closed by peer" about a second after the peer's process ends, and every
rank keeps a receive posted on every peer (transport.py), so every death is seen by every
rank. The transport turns it into `PeerLost`; `fatal_on_failure` turns that, a user error, Ctrl-C /
SIGTERM or a bug into one line on stderr and `os._exit` — not a normal exit, which could
block forever in a process group's destructor or in a thread still waiting on a dead peer.
The launcher (launch.py) then stops the ranks still alive and names the first that failed.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from types import FrameType
from typing import NoReturn

from planner.errors import FerretError

EXIT_FAILED = 1
EXIT_PEER_LOST = 3  # this rank failed only because another one did (the launcher blames that one)
EXIT_NO_PROGRESS = 4  # this rank waited for the others longer than the watchdog allows (watchdog.py)
EXIT_INTERRUPTED = 130


CLOSED = "its connection closed (the process died or was killed)"
# Set by `launch_local` for the ranks it starts: a rank's last line goes to the launcher, which
# says it as its own one line (several ranks printing one error each would be several lines).
LOCAL_LAUNCH = "FERRET_LOCAL_LAUNCH"


class PeerLost(FerretError):
    """A peer rank's connection closed (it died, was killed, or failed) while this rank needed it."""

    def __init__(self, rank: int, detail: str) -> None:
        super().__init__(f"lost rank {rank}: {detail}")
        self.rank = rank
        self.detail = detail


def describe_connection_error(exc: BaseException) -> str:
    """The useful part of a gloo/NCCL error (they open with a C++ source location)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "] " in text and text.startswith("["):
        text = text.split("] ", 1)[1]
    if "closed by peer" in text.lower() or "connection reset" in text.lower():
        return CLOSED
    return text


def fatal(rank: int, message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Say `message` as this rank's last line and end the process now."""
    try:
        sys.stdout.flush()
        if not tell_launcher(message):
            sys.stderr.write(f"ferret run: rank {rank}: {message}\n")
        sys.stderr.flush()
    finally:
        os._exit(code)


def tell_launcher(message: str) -> bool:
    """Under `launch_local`, leave `message` in this rank's error file (torch's elastic agent
    hands it to the launcher as the failure's message) instead of printing it; False elsewhere
    (under torchrun the rank prints it)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not os.environ.get(LOCAL_LAUNCH) or not path:
        return False
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"message": message, "timestamp": int(time.time())}, f)
    return True


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def fatal_on_failure(rank: int) -> Iterator[None]:
    """Whatever goes wrong inside ends this process with one line and its exit status.

    SIGTERM (what the launcher sends the survivors of a failure, and what a scheduler sends
    on cancellation) is treated like Ctrl-C: the rank stops where it is, says so (and where),
    and exits 130; whatever it was writing stays marked partial (its caller's staging folder).
    SIGUSR1 dumps every thread's stack to stderr and changes nothing else."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # `kill -USR1 PID` dumps every thread's stack to stderr and the rank goes on: where a stalled
    # rank stands, even stuck in C with the interpreter lock held (the dump needs no Python).
    with contextlib.suppress(Exception):  # (a stderr without a file descriptor: no dump)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        yield
    except KeyboardInterrupt as exc:
        fatal(rank, f"stopped by {exc.args[0] if exc.args else 'SIGINT'}{where(exc)}", EXIT_INTERRUPTED)
    except PeerLost as exc:
        fatal(rank, str(exc), EXIT_PEER_LOST)
    except FerretError as exc:
        fatal(rank, str(exc))
    except BaseException as exc:
        if describe_connection_error(exc) == CLOSED:  # a collective (start-up, reports) met a dead peer
            fatal(rank, f"lost a peer: {CLOSED}", EXIT_PEER_LOST)
        traceback.print_exc()
        fatal(rank, f"failed: {type(exc).__name__}: {exc}")
    finally:
        signal.signal(signal.SIGTERM, previous)


def where(exc: BaseException) -> str:
    """ " in CALLER → … → FUNCTION (FILE:LINE)": the innermost frames `exc` was raised in — for a rank stopped
    because another failed, what it was doing then (one side of a stall); "" without one."""
    frames = [  # not this module's own (the signal handler, `fatal_on_failure`'s yield) nor contextlib's
        f for f in traceback.extract_tb(exc.__traceback__) if f.filename not in (__file__, contextlib.__file__)
    ]
    if not frames:
        return ""
    inner = frames[-1]
    calls = " → ".join(f.name for f in frames[-3:])  # the caller's callers say which wait it was
    return f" in {calls} ({os.path.basename(inner.filename)}:{inner.lineno})"


def run_and_exit(rank: int, body: Callable[[], int]) -> NoReturn:
    """Run a rank's whole life and end the process with its exit status, whatever happens."""
    code = EXIT_FAILED
    with fatal_on_failure(rank):
        code = body()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def die_with_parent() -> None:
    """End this rank when the process that started it (torch's elastic agent) ends.

    The agent starts every rank in a session of its own, so a launcher that is killed (or
    crashes) would otherwise leave its ranks running for ever, waiting on peers that may
    never speak again. Linux delivers SIGKILL to the rank when its parent dies
    (`PR_SET_PDEATHSIG`); elsewhere this does nothing (the agent's own shutdown remains).
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(EXIT_PEER_LOST)
