"""Which ready op a rank runs next: 1F1B priority under the per-(worker, stage) windows.

A ready backward before a ready forward, then the older datum first (the twin's device heap).
A forward that will store its datum at stage `j` waits while worker `n` already holds
`P − j` data there (its slot's window: what makes every worker a 1F1B pipeline); inference
forwards (`--predict-all`) come last and store nothing.
"""

from __future__ import annotations

from heapq import heappop, heappush

from executor.distributed.host import FWD, Op


class ReadyOps:
    def __init__(self, num_stages: int) -> None:
        self.P = num_stages
        self._heap: list[tuple[int, int, int, Op, bool]] = []
        self._seq = 0
        self._held: dict[tuple[int, int], int] = {}  # (worker, stage) → data stored there

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, op: Op, stores: bool) -> None:
        """`stores`: a forward whose datum's backward will come back through this stage."""
        self._seq += 1
        heappush(self._heap, (op.kind, op.sample, self._seq, op, stores))

    def pop(self) -> Op | None:
        """The next op that may start now, taken off the queue (None: nothing may)."""
        heap = self._heap
        deferred = []
        chosen = None
        while heap:
            entry = heappop(heap)
            op, stores = entry[3], entry[4]
            if op.kind == FWD and stores:
                key = (op.worker, op.stage)
                held = self._held.get(key, 0)
                if held >= self.P - op.stage:
                    deferred.append(entry)
                    continue
                self._held[key] = held + 1
            chosen = op
            break
        for entry in deferred:
            heappush(heap, entry)
        return chosen

    def released(self, worker: int, stage: int) -> None:
        """A stored datum's backward at `stage` ended: its slot holds one fewer."""
        self._held[(worker, stage)] -= 1
