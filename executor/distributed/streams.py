"""CUDA streams of a rank (`--streams K`): the stages it owns run side by side on a GPU.

Stage `j`'s ops go to stream `j mod K`. Ops of one stage stay in order on one stream — they
share the stage's weights (an update may step them in place), so they must not overlap — while
ops of different stages, hence of different workers' data, overlap. A datum's tensor is
handed on with an event: the next op on it, on whatever stream, waits for that event; a
tensor sent to another rank is sent once its event has completed (the transport's thread
waits for it), and a received one carries an event of the receiving thread's stream. On the
CPU, or with K = 1, nothing here does anything: a rank runs one op at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from planner.errors import FerretError


def check_streams(count: int, cuda: bool) -> None:
    if count < 1:
        raise FerretError(f"--streams must be ≥ 1, got {count}")
    if count > 1 and not cuda:
        raise FerretError("--streams K > 1 needs CUDA; on the CPU a rank runs one op at a time")


_NOTHING = contextlib.nullcontext()  # reusable: the CPU path costs no generator per op


class Streams:
    def __init__(self, device: torch.device, count: int) -> None:
        check_streams(count, device.type == "cuda")
        self.enabled = count > 1
        self._streams = [torch.cuda.Stream(device) for _ in range(count)] if self.enabled else []

    def running(self, stage: int, after: Any) -> contextlib.AbstractContextManager[None]:
        """Run the op of `stage` on its stream, after event `after` (the input's, or None)."""
        return self._on_stream(stage, after) if self.enabled else _NOTHING

    @contextlib.contextmanager
    def _on_stream(self, stage: int, after: Any) -> Iterator[None]:
        stream = self._streams[stage % len(self._streams)]
        if after is not None:
            stream.wait_event(after)
        with torch.cuda.stream(stream):
            yield

    def mark(self, stage: int) -> Any:
        """An event after everything issued on `stage`'s stream so far (None when disabled)."""
        if not self.enabled:
            return None
        event = torch.cuda.Event()
        event.record(self._streams[stage % len(self._streams)])
        return event


def received_event(device: torch.device) -> Any:
    """On a CUDA rank, an event after what the receiving thread's stream has done (the tensors
    it just received); None on the CPU."""
    if device.type != "cuda":
        return None
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    return event
