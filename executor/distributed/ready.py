"""Which ready op a rank runs next: the shared dispatch policy (sim/policy.py), as the twin runs it.

A ready backward before a ready forward, then the older datum, then the op that became ready
first (`sim.policy.ReadyOps`); a forward that will store its datum at stage `j` waits while its
worker already holds the stage's window there (`may_start`, `AdmissionPolicy.stage_window`:
1F1B's `P − j`). A rank runs one op at a time, so no slot is ever busy when it chooses.
Inference forwards (`--predict-all`) come after every training op of their datum's age and
store nothing.
"""

from __future__ import annotations

from executor.distributed.host import FWD, Op
from sim.policy import AdmissionPolicy, ReadyOps, may_start


class RankReadyOps:
    def __init__(self, policy: AdmissionPolicy) -> None:
        self.policy = policy
        self._ready = ReadyOps()
        self._held: dict[tuple[int, int], int] = {}  # (worker, stage) → data stored there

    def __len__(self) -> int:
        return len(self._ready)

    def push(self, op: Op, stores: bool) -> None:
        """`stores`: a forward whose datum's backward will come back through this stage."""
        self._ready.push(op.kind, op.sample, (op, stores))

    def pop(self) -> Op | None:
        """The next op that may start now, taken off the queue (None: nothing may)."""
        chosen = self._ready.next_startable(self._startable)
        if chosen is None:
            return None
        op, stores = chosen[1]
        if op.kind == FWD and stores:
            key = (op.worker, op.stage)
            self._held[key] = self._held.get(key, 0) + 1
        return op

    def held(self) -> list[str]:
        """The queued ops, in words (a description for the watchdog; not the hot path)."""
        return [
            f"{'fwd' if op.kind == FWD else 'bwd'} of sample {op.sample} at stage {op.stage}"
            for op, _ in self._ready.queued()
        ]

    def released(self, worker: int, stage: int) -> None:
        """A stored datum's backward at `stage` ended: its slot holds one fewer."""
        self._held[(worker, stage)] -= 1

    def _startable(self, kind: int, item: tuple[Op, bool]) -> bool:
        op, stores = item
        held = self._held.get((op.worker, op.stage), 0)
        return may_start(kind, False, stores, held, self.policy.stage_window(op.stage, 1))
