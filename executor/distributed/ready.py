"""Which ready op a rank runs next: the shared dispatch policy (sim/policy.py), as the twin runs it.

A ready backward before a ready forward, then the older datum, then the op that became ready
first (`sim.policy.ReadyOps`); a forward that will store its datum at stage `j` waits while its
worker already holds the stage's window there (`may_start`, `AdmissionPolicy.stage_window`:
1F1B's `P − j`, inside a 1F1B-flush batch too; GPipe's whole batch). A rank runs one op at a
time, so no slot is ever busy when it chooses, and only a storing forward can be held back: any
other op first in order starts at once (the common case, taken without a call into the policy). Inference forwards (`--predict-all`) come
after every training op of their datum's age and store nothing.
"""

from __future__ import annotations

from heapq import heappop

from executor.distributed.host import BWD, FWD
from sim.policy import AdmissionPolicy, ReadyOps, may_start

Op = tuple[int, int, int, int]  # (kind, sample, stage, worker): what `pop` hands the loop


class RankReadyOps:
    """One rank's ready ops, dispatched by the shared policy (see the module docstring).

    `push` queues an op (it is `StageHost.on_ready`); `pop` takes the next one allowed to start now,
    or None. It keeps the count of data each (worker, stage) stores to enforce the stage window: a
    stored forward counts when it starts, the backward at that stage uncounts it when it starts (a
    rank runs one op at a time, so no choice falls between the two moments).
    """

    def __init__(self, policy: AdmissionPolicy, num_workers: int) -> None:
        self.policy = policy
        # Asked per op: once. GPipe's window is its batch, and a worker never holds more than its
        # batch (the next starts when it is done): the mini-batch is the same bound.
        self._window = [policy.stage_window(j, policy.minibatch) for j in range(policy.num_stages)]
        self._ready = ReadyOps()
        self._held = [[0] * num_workers for _ in range(policy.num_stages)]  # [stage][worker] data stored

    def __len__(self) -> int:
        return len(self._ready)

    def push(self, kind: int, sample: int, stage: int, worker: int, stores: bool) -> None:
        """`stores`: a forward whose datum's backward will come back through this stage."""
        self._ready.push(kind, sample, (sample, stage, worker, stores))

    def pop(self) -> Op | None:
        """The next op that may start now, taken off the queue (None: nothing may)."""
        ready = self._ready.heap
        if not ready:  # most turns of an idle loop
            return None
        kind, _, _, (sample, stage, worker, stores) = ready[0]
        if kind == FWD and stores:  # its slot's window may be full: the policy decides
            held = self._held[stage]
            if may_start(FWD, False, True, held[worker], self._window[stage]):
                heappop(ready)
                held[worker] += 1
                return kind, sample, stage, worker
            chosen = self._ready.next_startable(self._startable)  # a later op, passing the held one
            if chosen is None:
                return None
            kind, (sample, stage, worker, stores) = chosen
            if stores:
                self._held[stage][worker] += 1
                return kind, sample, stage, worker
        else:
            heappop(ready)  # `may_start` holds back nothing but a storing forward
        if kind == BWD:
            self._held[stage][worker] -= 1
        return kind, sample, stage, worker

    def held(self) -> list[str]:
        """The queued ops, in words (a description for the watchdog; not the hot path)."""
        return [
            f"{'fwd' if kind == FWD else 'bwd'} of sample {sample} at stage {stage}"
            for kind, (sample, stage, _, _) in self._ready.queued()
        ]

    def _startable(self, kind: int, op: tuple[int, int, int, bool]) -> bool:
        _, stage, worker, stores = op
        return may_start(kind, False, stores, self._held[stage][worker], self._window[stage])
