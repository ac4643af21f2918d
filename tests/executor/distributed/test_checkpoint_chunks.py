"""Incremental checkpoints (format 4, executor/distributed/checkpoint.py), on a stand-in rank.

A rank's record — trace rows, updates, predictions and, on the source, its per-datum lists —
is written one chunk per checkpoint; the record rebuilt from a checkpoint's chain equals the
whole record a format-3 checkpoint held at that moment (also for a datum that waited for a
mini-batch at one checkpoint and changed after it), each checkpoint's earlier chunks are links
to the previous one's files (nothing written twice), and a chunk no complete checkpoint lists
is never read. The write runs in a thread on a snapshot: what the loop changes after the
snapshot is not in the checkpoint. The source's side resumes the stream once every rank has
snapshotted and completes the checkpoint only once every rank has written.
"""

from __future__ import annotations

import copy
import math
import pickle
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.distributed import checkpoint
from executor.distributed.checkpoint import (
    FAILED,
    SNAPPED,
    WRITTEN,
    Checkpointer,
    RankCheckpoints,
    begin,
    chunk_name,
    complete,
    folder,
    latest,
    load_rank,
    partial_folder,
    read_record,
)
from executor.distributed.protocol import Kind
from executor.pipeline.transport import LocalTransport, Message
from executor.stage import UpdateResult
from planner.errors import FerretError

N_WORKERS = 2


class Algorithm:
    """Learned state that the loop changes in place (as ER's memory is)."""

    def __init__(self) -> None:
        self.memory = torch.zeros(4)

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory}  # the live tensor, as a state_dict gives it

    def load_state_dict(self, state: dict[str, Any], model: Any) -> None:
        self.memory = state["memory"].clone()


@dataclass
class Worker:
    algorithm: Algorithm = field(default_factory=Algorithm)
    stages: dict[int, Any] = field(default_factory=dict)  # (a stage's state is stage/checkpoint.py's, tested there)
    _admitted: list[int] = field(default_factory=lambda: [0] * N_WORKERS)
    flops: float = 0.0
    model: Any = None
    model_device: str = "cpu"


@dataclass
class Recorder:
    rows: list[tuple[Any, ...]] = field(default_factory=list)


class Source:
    """The source's records: per datum lists of the stream's length, queues per worker."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.next = 0
        self.pause_at: int | None = None
        self.quiescent = True
        self.bottom, self.dropped, self.removed = [-1] * n, [False] * n, [False] * n
        self.worker_of, self.released_s = [-1] * n, [math.nan] * n
        self.waiting: list[list[int]] = [[] for _ in range(N_WORKERS)]

    @property
    def paused(self) -> bool:
        return self.next == self.pause_at

    def summary(self) -> dict[str, list]:
        return {"bottom": list(self.bottom), "dropped": list(self.dropped), "removed": list(self.removed),
                "worker": list(self.worker_of), "released_s": list(self.released_s),
                "waiting": [list(w) for w in self.waiting]}  # fmt: skip

    def restore(self, summary: dict[str, list], position: int) -> None:
        self.next = position
        self.bottom, self.dropped, self.removed = summary["bottom"], summary["dropped"], summary["removed"]
        self.worker_of, self.released_s = summary["worker"], summary["released_s"]
        self.waiting = [list(w) for w in summary["waiting"]]


class Host:
    def __init__(self, transport: Any, rank: int = 0) -> None:
        self.rank, self.source = rank, 0
        self.transport = transport
        self.worker = Worker()
        self.recorder = Recorder()
        self.predicted: dict[int, int] = {}
        self.updates: list[tuple[int, UpdateResult, float]] = []
        self.staleness: dict[int, list[int]] = {0: [0]}
        self.ops, self.busy_s, self.nonfinite_skipped = 0, 0.0, 0
        self.received: list[tuple[int, Message]] = []

    def settle_predictions(self) -> None:
        pass

    def receive(self, src: int, message: Message) -> None:
        self.received.append((src, message))
        self.on_saved(src, *message.fields)  # (set by a Checkpointer)


def whole(host: Host, source: Source | None) -> dict[str, Any]:
    """The record as format 3 saved it whole (checkpoint.py before chunks)."""
    return copy.deepcopy({
        "admitted": list(host.worker._admitted),
        "predicted": dict(host.predicted),
        "updates": [(stage, tuple(update), t) for stage, update, t in host.updates],
        "staleness": {j: list(h) for j, h in host.staleness.items()},
        "rows": list(host.recorder.rows),
        "source": None if source is None else source.summary(),
    })  # fmt: skip


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a datum not released has a NaN release time)."""
    return pickle.dumps(a) == pickle.dumps(b) or repr(a) == repr(b)


def live(host: Host, source: Source, start: int, end: int, waits: int) -> None:
    """The stream from `start` to `end`: what waited at `start` is admitted now; each datum
    arrives, trains (a row, an update, a prediction) or — the last `waits` — waits."""
    for queue in source.waiting:
        for i in queue:  # a datum that waited at the previous checkpoint changes after it
            source.bottom[i] = 1
            host.predicted[i] = i % 10
        queue.clear()
    for i in range(start, end):
        worker = i % N_WORKERS
        source.worker_of[i], source.released_s[i] = worker, i * 0.01
        host.recorder.rows.append(("arrive", i, worker, -1, -1, i * 0.01, i * 0.01, -1, 0, 0))
        if i >= end - waits:
            source.waiting[worker].append(i)
            continue
        source.bottom[i] = 0
        source.dropped[i] = i % 7 == 3
        host.predicted[i] = i % 10
        host.worker._admitted[worker] += 1
        host.updates.append((0, UpdateResult(i, 0, (i,)), i * 0.01))
        host.recorder.rows.append(("update", -1, worker, 0, 0, i * 0.01, i * 0.01, i, 0, 0, (i,)))
        host.staleness[0][0] += 1
        host.worker.algorithm.memory += 1
    source.next = end


def take(checkpoints: RankCheckpoints, root: Path, position: int) -> Path:
    """One checkpoint on a one-rank run: begin, snapshot and write, complete."""
    begin(root, position)
    checkpoints.take(root, position)
    checkpoints.wait()
    return complete(root, position, {})


@settings(max_examples=15, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    waits=st.lists(st.integers(0, 3), min_size=4, max_size=4),
)
def test_a_record_rebuilt_from_chunks_is_the_whole_record(tmp_path_factory, cuts, waits):
    root = tmp_path_factory.mktemp("ck")
    n = sum(cuts) + 5
    host, source = Host(LocalTransport()), Source(n)
    checkpoints = RankCheckpoints(host, source)  # type: ignore[arg-type]
    position = 0
    for cut, wait in zip(cuts, waits, strict=False):
        live(host, source, position, position + cut, min(wait, cut))
        expected, previous, position = whole(host, source), checkpoints.previous, position + cut
        path = take(checkpoints, root, position)
        state = torch.load(path / "rank0.pt", weights_only=False)
        assert same(read_record(path, state), expected)
        assert state["chain"] == [chunk_name(0, p) for p in sorted(int(q.name[3:]) for q in root.glob("at-*"))]
        if previous is not None:  # the earlier chunks are the previous checkpoint's files, linked
            for name in state["chain"][:-1]:
                assert (path / name).stat().st_ino == (previous / name).stat().st_ino
        # Every checkpoint wrote a chunk and answered the source (itself: its inbox).
        assert host.transport.receive(0.0) == (0, Message(Kind.SAVED, (position, WRITTEN)))
    # A fresh rank loads it: the same record, and its next chunk goes on from there.
    fresh_host, fresh_source = Host(LocalTransport()), Source(n)
    since = load_rank(latest(root), fresh_host, fresh_source)  # type: ignore[arg-type]
    assert since.position == position and since.chain == tuple(state["chain"])
    assert same(whole(fresh_host, fresh_source), whole(host, source))
    assert torch.equal(fresh_host.worker.algorithm.memory, host.worker.algorithm.memory)
    resumed = RankCheckpoints(fresh_host := Host(LocalTransport()), fresh_source := Source(n))  # type: ignore[arg-type]
    resumed.load(latest(root))
    live(fresh_host, fresh_source, position, n - 1, 1)
    live(host, source, position, n - 1, 1)
    path = take(resumed, root, n - 1)
    assert same(read_record(path, torch.load(path / "rank0.pt", weights_only=False)), whole(host, source))


def test_each_checkpoint_writes_only_what_the_record_gained(tmp_path):
    """The new chunk's size depends on the data since the previous checkpoint, not on the position."""
    host, source = Host(LocalTransport()), Source(4000)
    checkpoints = RankCheckpoints(host, source)  # type: ignore[arg-type]
    sizes = []
    for k in range(1, 4):
        live(host, source, (k - 1) * 1000, k * 1000, 0)
        path = take(checkpoints, tmp_path, k * 1000)
        sizes.append((path / chunk_name(0, k * 1000)).stat().st_size)
    assert max(sizes) < 1.1 * min(sizes), sizes
    whole_bytes = len(pickle.dumps(whole(host, source), protocol=pickle.HIGHEST_PROTOCOL))
    assert sizes[-1] < 0.45 * whole_bytes  # a whole-record checkpoint would write all three thousand


def test_the_write_is_of_the_snapshot_not_of_what_came_after(tmp_path, monkeypatch):
    """The loop goes on while the writer writes: what it changes then is not in the checkpoint."""
    host, source = Host(LocalTransport()), Source(40)
    checkpoints = RankCheckpoints(host, source)  # type: ignore[arg-type]
    live(host, source, 0, 10, 0)
    expected, memory = whole(host, source), host.worker.algorithm.memory.clone()
    go = threading.Event()
    real = checkpoint.write
    monkeypatch.setattr(checkpoint, "write", lambda *args: (go.wait(10), real(*args)))
    begin(tmp_path, 10)
    checkpoints.take(tmp_path, 10)
    live(host, source, 10, 15, 0)  # in place: the memory tensor, the lists, the dict
    go.set()
    checkpoints.wait()
    path = complete(tmp_path, 10, {})
    state = torch.load(path / "rank0.pt", weights_only=False)
    assert same(read_record(path, state), expected)
    assert torch.equal(state["algorithm"]["memory"], memory) and not torch.equal(memory, host.worker.algorithm.memory)


def test_a_chunk_of_an_incomplete_checkpoint_is_never_read(tmp_path):
    host, source = Host(LocalTransport()), Source(40)
    checkpoints = RankCheckpoints(host, source)  # type: ignore[arg-type]
    live(host, source, 0, 10, 1)
    take(checkpoints, tmp_path, 10)
    live(host, source, 10, 20, 1)
    begin(tmp_path, 20)  # the run dies while checkpoint 20 is written: a chunk, no meta.json
    (partial_folder(tmp_path, 20) / chunk_name(0, 20)).write_bytes(b"half a pickle")
    stray = folder(tmp_path, 10) / chunk_name(0, 20)  # nor is a chunk the chain does not list
    stray.write_bytes(b"not a pickle")
    fresh_host, fresh_source = Host(LocalTransport()), Source(40)
    assert latest(tmp_path) == folder(tmp_path, 10)
    resumed = RankCheckpoints(fresh_host, fresh_source)  # type: ignore[arg-type]
    assert resumed.load(latest(tmp_path)) == 10
    assert fresh_source.waiting == [[], [9]] and len(fresh_host.predicted) == 9
    # The resumed run takes checkpoint 20 again: the partial folder is started afresh.
    stray.unlink()
    live(fresh_host, fresh_source, 10, 20, 0)
    path = take(resumed, tmp_path, 20)
    assert len(read_record(path, torch.load(path / "rank0.pt", weights_only=False))["predicted"]) == 20


def test_a_missing_or_misplaced_chunk_is_one_line(tmp_path):
    host, source = Host(LocalTransport()), Source(40)
    checkpoints = RankCheckpoints(host, source)  # type: ignore[arg-type]
    for k in (1, 2):
        live(host, source, (k - 1) * 10, k * 10, 0)
        path = take(checkpoints, tmp_path, k * 10)
    state = torch.load(path / "rank0.pt", weights_only=False)
    with pytest.raises(FerretError, match=r"starts at datum 10, the record before it at 0$"):
        read_record(path, {**state, "chain": state["chain"][1:]})
    (path / chunk_name(0, 10)).unlink()
    with pytest.raises(FerretError, match=r"its record chunk rank0-record-000000010.pkl is missing"):
        read_record(path, state)


class Wire:
    """The source's transport on two ranks: what it sends; its own messages into its inbox."""

    def __init__(self) -> None:
        self.rank, self.world_size = 0, 2
        self.sent: list[tuple[int, Message]] = []
        self.inbox = LocalTransport().inbox

    def send(self, dst: int, message: Message) -> None:
        if dst == self.rank:
            self.inbox.put(message)
        else:
            self.sent.append((dst, message))


def test_the_stream_goes_on_after_every_snapshot_and_the_checkpoint_completes_after_every_write(tmp_path):
    wire = Wire()
    host, source = Host(wire), Source(100)
    checkpointer = Checkpointer(tmp_path, 30, RankCheckpoints(host, source), source, {"n": 100})  # type: ignore[arg-type]
    live(host, source, 0, 30, 0)
    assert source.paused
    checkpointer.tick()
    assert wire.sent == [(1, Message(Kind.CHECKPOINT, (30,)))]
    assert source.paused  # rank 1 has not snapshotted yet
    checkpointer.saved(1, 30, SNAPPED)
    assert source.pause_at == 60 and not source.paused  # released: the writes go on meanwhile
    checkpointer.checkpoints.wait()
    host.receive(0, wire.inbox.get(timeout=10))  # the source's own write is done
    assert not (folder(tmp_path, 30)).exists()  # rank 1 has not written yet
    live(host, source, 30, 60, 0)
    checkpointer.tick()  # at the next checkpoint: it waits for this one
    assert len(wire.sent) == 1
    checkpointer.saved(1, 30, WRITTEN)
    assert (folder(tmp_path, 30) / "meta.json").is_file() and not partial_folder(tmp_path, 30).exists()
    checkpointer.tick()
    assert wire.sent[1:] == [(1, Message(Kind.CHECKPOINT, (60,)))]
    checkpointer.saved(1, 60, SNAPPED)
    with pytest.raises(FerretError, match=r"^rank 1 could not write its part of the checkpoint at datum 60"):
        checkpointer.saved(1, 60, FAILED)
    checkpointer.checkpoints.wait()
