"""One rank's side of a mini-batch (`BatchBook`), without ranks: the BATCH relay, GPipe's barrier
at the last stage, where each owned stage's group closes, and the watchdog's words for it."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from executor.distributed import protocol
from executor.distributed.batches import BatchBook
from executor.distributed.host import BWD, FWD


def book(owners: tuple[int, ...], rank: int, barrier: bool) -> tuple[BatchBook, list, list]:
    """A book on `rank` of a run whose stage j lives on `owners[j]`; (book, queued ops, sent messages)."""
    queued: list = []
    sent: list = []
    stages = {j: None for j, owner in enumerate(owners) if owner == rank}
    host = SimpleNamespace(
        P=len(owners), owners=list(owners), rank=rank, worker=SimpleNamespace(stages=stages),
        transport=SimpleNamespace(send=lambda to, message: sent.append((to, message))),
    )  # fmt: skip
    return BatchBook(host, barrier, 1, lambda *op: queued.append(op)), queued, sent  # type: ignore[arg-type]


def test_the_batch_is_relayed_once_to_the_next_owner_up():
    middle, _, sent = book((0, 1, 1, 2), rank=1, barrier=False)
    middle.received(protocol.batch(0, 0, 3, torch.tensor([1, 2, 3, 3])))
    middle.received(protocol.batch(0, 0, 3, torch.tensor([1, 2, 3, 3])))  # the same batch again
    assert [(to, m.fields) for to, m in sent] == [(2, (0, 0, 3))]
    assert middle.left == {(0, 1): 2, (0, 2): 3}
    last, _, sent = book((0, 1, 1, 2), rank=2, barrier=False)
    last.open(0, 0, 3, [1, 2, 3, 3])
    assert sent == []  # the last stage's owner sends the batch nowhere


def test_gpipe_parks_the_last_stages_backwards_until_the_batch_has_gone_forward():
    last, queued, _ = book((0, 1), rank=1, barrier=True)
    last.open(0, 4, 3, [3, 3])
    last.on_ready(FWD, 12, 1, 0, True)  # forwards pass through
    last.on_ready(BWD, 13, 1, 0, False)
    last.on_ready(BWD, 12, 1, 0, False)
    assert queued == [(FWD, 12, 1, 0, True)]
    assert last.describe() == ["sample 13 of worker 0's batch 4 (2 of 3)", "sample 12 of worker 0's batch 4 (2 of 3)"]
    last.on_ready(BWD, 14, 1, 0, False)
    assert queued[1:] == [(BWD, s, 1, 0, False) for s in (13, 12, 14)]  # in the order they came
    assert last.describe() == []


def test_1f1b_flush_parks_nothing_and_a_group_closes_at_the_batchs_last_backward_at_its_stage():
    first, queued, _ = book((0, 0), rank=0, barrier=False)
    first.open(0, 0, 3, [1, 3])  # omission: one datum of three back-propagates through stage 0
    first.on_ready(BWD, 5, 1, 0, False)
    assert queued == [(BWD, 5, 1, 0, False)]
    assert [first.backward_done(1, 0) for _ in range(3)] == [False, False, True]
    assert first.backward_done(0, 0)
