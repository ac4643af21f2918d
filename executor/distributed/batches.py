"""Synchronous strategies (GPipe, 1F1B-flush) in real time: each rank's side of a mini-batch.

The source starts a worker's mini-batch by the shared policy (source.py: `on_arrival`,
`batch_size`, `choose`, as the twin's `sim.admission` calls them) and admits its data at once.
Every stage owner must then know the batch before any of its data reach it:

* GPipe's barrier (`SimStrategy.barrier`): the last stage's backwards of a batch become ready
  together, once the whole batch has gone forward there (the twin parks them the same way,
  `sim.completion.forward_done`, and hands them to the dispatch in the order they arrived);
* where a stage's group closes: the twin steps stage `j` at the batch's last backward there
  (`acc_target`: the batch's data whose backward reaches `j`). The StageRuntimes accumulate
  `c^a = minibatch` gradients (`execution_plan`), so a full batch closes its group by itself at
  that backward; a shorter one (the stream's last batch, or data an omission stops above `j`)
  is flushed there, right after that backward — the update the lockstep path applies at the
  trace's `update` row (`StageHost.flush_stage`).

The `BATCH` message says so (protocol.py): the source opens the batch on its own stages and
sends it to the next stage's owner, and every owner relays it up before it sends any of the
batch's activations (channels are ordered), so it is never overtaken by the batch's data.
A worker's next batch starts only when every datum of this one is done (its `DONE`), after
every stage's update: no stage ever runs a forward of batch `b + 1` on weights older than
batch `b`'s update, and every gradient is applied with staleness 0.
"""

from __future__ import annotations

import torch

from executor.distributed import protocol
from executor.distributed.host import BWD, OnReady, StageHost
from executor.pipeline.transport import Message


class BatchBook:
    """One rank's open mini-batches, one per worker: their size, GPipe's parked backwards at the
    last stage, and per owned stage the batch's backwards still to come (module docstring).

    `push` is the driver's queue; the book stands in front of it as the host's `on_ready`.
    """

    def __init__(self, host: StageHost, barrier: bool, num_workers: int, push: OnReady) -> None:
        self.host = host
        self.barrier = barrier
        self.push = push
        self.last = host.P - 1
        self.index = [-1] * num_workers  # the batch each worker has open here
        self.size = [0] * num_workers
        self.parked: list[list[int]] = [[] for _ in range(num_workers)]  # GPipe: at the last stage
        self.left: dict[tuple[int, int], int] = {}  # (worker, owned stage) → the batch's backwards to come
        owners, rank = host.owners, host.rank
        # The owners the batch's activations leave this rank for: the BATCH goes there first.
        self.hops = sorted({owners[j + 1] for j in host.worker.stages if j < self.last and owners[j + 1] != rank})
        host.on_ready = self.on_ready
        host.on_batch = self.received
        host.closes_batch = self.backward_done

    def open(self, worker: int, index: int, size: int, backwards: list[int]) -> None:
        """Batch `index` of `worker`, of `size` data, `backwards[j]` of which back-propagate
        through stage `j`, starts here (the source) or its `BATCH` has arrived; relay it up."""
        if index <= self.index[worker]:  # a rank holding stages apart gets it once per path
            return
        self.index[worker], self.size[worker] = index, size
        for j in self.host.worker.stages:
            self.left[(worker, j)] = backwards[j]
        if self.hops:
            message = protocol.batch(worker, index, size, torch.tensor(backwards, dtype=torch.int64))
            for rank in self.hops:
                self.host.transport.send(rank, message)

    def received(self, message: Message) -> None:
        worker, index, size = message.fields[:3]
        self.open(worker, index, size, message.tensors[0].tolist())

    def on_ready(self, kind: int, sample: int, stage: int, worker: int, stores: bool) -> None:
        """GPipe parks the last stage's backwards until the batch has gone forward there."""
        if kind == BWD and stage == self.last and self.barrier:
            parked = self.parked[worker]
            parked.append(sample)
            if len(parked) < self.size[worker]:
                return
            for other in parked:
                self.push(BWD, other, stage, worker, False)
            parked.clear()
            return
        self.push(kind, sample, stage, worker, stores)

    def describe(self) -> list[str]:
        """GPipe's parked backwards, in words (the watchdog's line; not the hot path)."""
        return [
            f"sample {sample} of worker {worker}'s batch {self.index[worker]} ({len(parked)} of {self.size[worker]})"
            for worker, parked in enumerate(self.parked)
            for sample in parked
        ]

    def backward_done(self, stage: int, worker: int) -> bool:
        """A backward of `worker`'s batch ended at `stage`: whether it was the batch's last there."""
        key = (worker, stage)
        left = self.left[key] - 1
        self.left[key] = left
        return left == 0
