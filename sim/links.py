"""Links between devices: a transfer occupies its (source, destination) link, FIFO, for the
busy time the cost model gives it (`bytes / bandwidth`), then lands its latency later. Only
used when links cost time; free links hand a payload over at once and write no rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import Event, Timeout

from sim.costs import OpCosts
from sim.parts import Datum, Slot


class Links:
    def __init__(
        self,
        env: simpy.Environment,
        costs: OpCosts,
        emit: Callable[[tuple[Any, ...]], None],
        deliver: Callable[[Slot, int, Datum], None],
    ) -> None:
        self.env = env
        self.costs = costs
        self.emit = emit
        self.deliver = deliver  # makes the op ready at the destination slot
        self.free_at: dict[tuple[int, int], float] = {}

    def transfer(self, src: Slot, dst: Slot, kind: int, d: Datum, nbytes: int, now: float) -> None:
        key = (src.dev_index, dst.dev_index)
        start = max(now, self.free_at.get(key, 0.0))
        busy, latency = self.costs.transfer_s(nbytes)
        busy_until = start + busy
        self.free_at[key] = busy_until
        ev = Timeout(self.env, busy_until + latency - now, (src, dst, kind, d, nbytes, start))
        ev.callbacks.append(self._landed)

    def _landed(self, ev: Event) -> None:
        src, dst, kind, d, nbytes, start = ev._value
        now = self.env._now
        self.emit(("send", d.sample, src.widx, src.stage, src.dev_index, start, now, -1, 0, nbytes))
        self.emit(("recv", d.sample, dst.widx, dst.stage, dst.dev_index, now, now, -1, 0, nbytes))
        self.deliver(dst, kind, d)
