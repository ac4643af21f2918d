"""Links between devices: a transfer occupies its (source, destination) link, FIFO, for the
busy time the cost model gives it (`bytes / bandwidth`), then lands its latency later. Only
used when links cost time; free links hand a payload over at once and write no rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from librt.strings import BytesWriter

from sim.costs import OpCosts
from sim.parts import Datum, Slot
from sim.rows import write_row
from sim.trace import KIND_CODE

LANDED: Final = 2  # the engine's event kind of a transfer that lands (the engine imports both)
OP: Final = 1  # the engine's priority of an op's end at equal times; a landing shares it
_SEND, _RECV = KIND_CODE["send"], KIND_CODE["recv"]


class Links:
    """The engine's device-to-device links: one FIFO per (source, destination) device pair.

    `transfer` holds the pair's link for the cost model's busy time from when it is free, and schedules
    `LANDED` latency seconds after that on the engine's clock; `landed` writes the send and receive
    trace rows when the engine traces.
    """

    def __init__(self, costs: OpCosts, schedule: Callable[..., None], rows: BytesWriter | None) -> None:
        self.costs = costs
        self.schedule = schedule  # (time, priority, what, a, b, c, e) on the engine's clock
        self.rows = rows  # the trace sink's packed rows, or None
        self.free_at: dict[tuple[int, int], float] = {}
        self.transfers = 0

    def transfer(self, src: Slot, dst: Slot, kind: int, d: Datum, nbytes: int, now: float) -> None:
        key = (src.dev_index, dst.dev_index)
        start = max(now, self.free_at.get(key, 0.0))
        busy, latency = self.costs.transfer_s(nbytes)
        busy_until = start + busy
        self.free_at[key] = busy_until
        self.transfers += 1
        self.schedule(now + (busy_until + latency - now), OP, LANDED, dst, d, (kind, src, nbytes, start), None)

    def landed(self, dst: Slot, d: Datum, info: tuple[Any, ...], now: float) -> None:
        """The payload reached `dst` (the engine then makes its op ready there)."""
        if self.rows is not None:
            _, src, nbytes, start = info
            write_row(self.rows, _SEND, d.sample, src.widx, src.stage, src.dev_index, start, now, -1, 0, nbytes, 0)
            write_row(self.rows, _RECV, d.sample, dst.widx, dst.stage, dst.dev_index, now, now, -1, 0, nbytes, 0)
