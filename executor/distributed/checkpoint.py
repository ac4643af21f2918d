"""Checkpoints of a real-time run, and resuming from one.

`--checkpoint-every S`: when datum `c = k·S` is due, the source stops releasing arrivals and
lets every datum before `c` finish (trained or dropped); the pipeline is then quiescent —
nothing in flight on any rank — and the source asks every rank (`CHECKPOINT c`) to save what
its future depends on into `DIR/.at-c.partial/`:

* `rank<r>.pt`, bounded whatever the stream's length: per owned stage, the StageRuntime's
  state (executor/stage/checkpoint.py: weights and version, optimizer and compensator state,
  open accumulation groups, omission counters); what the algorithm learned besides the
  weights (`OCLAlgorithm.state_dict`: adaptive freezing's statistics — each rank its own copy,
  whose Fisher traces of its own layers are the truth; ER's memory and sampler, which the
  source draws from and teaches; LwF's teacher, MAS's importances and anchor); the omission
  counter of every worker's admissions, the staleness histograms and counters; on the source
  the stream position `c`, the data waiting in the workers' queues and the length of its
  per-datum lists; and `chain`, the record's chunk files in order.
* `rank<r>-record-<c>.pkl`, this rank's record chunk: what the run measured between the
  previous checkpoint (or the resumed one, or the start) and `c` — trace rows, updates,
  predictions and, on the source, the per-datum entries (bottom, dropped, removed, worker,
  release time) from the first one that could still change (a datum waiting for a
  mini-batch at the previous checkpoint) up to `c`. One `pickle.dumps` each (~10× cheaper
  than torch.save's pickler, which calls back into Python for every object). The earlier
  chunks of the chain are hard links to the previous complete checkpoint's files (a copy
  where the file system has no links), so every complete folder holds its whole record and
  stands alone, while each checkpoint writes only what the record gained: O(S), not O(c).

Format 3 wrote the whole record into every checkpoint (O(n²) bytes over a run) and wrote in
the loop; format 4 is this (a checkpoint of another format is refused with one line).

**Background write.** A rank snapshots its state in the loop (copies of the tensors and the
new record entries: cheap), answers `SAVED c SNAPPED`, and goes on; a writer thread links,
pickles and writes the files and then answers `SAVED c WRITTEN` (transport.send is a queue
put; on the source the answer goes to its own inbox, and its write starts once every rank has
snapshotted, so that its writer thread does not slow the other ranks' answers down). Once every
rank has snapshotted the source releases arrivals again — the stall is the drain plus the
snapshots, not the writes.
That is correct because what is written is the snapshot, which nothing after it changes, and
every rank snapshotted before any datum from `c` on was released (a rank can only get such a
datum's messages after the source has every `SNAPPED`; waiting for the source's own snapshot
only would not do: with 3 ranks, a datum's activation relayed by another rank could overtake
the source's `CHECKPOINT`). The checkpoint is complete only when every rank's `WRITTEN` came:
the source then writes `meta.json` and renames the folder to `DIR/at-c` — a folder without
`.partial` is complete, and a `.partial` one is never read (nor linked from). The next
checkpoint does not begin before this one is complete (the stream pauses at it and waits),
so a rank never snapshots while its previous write runs; at the run's end the source waits
for a write still running before it closes. The writer thread competes with the loop for the
interpreter's lock while it pickles, so ops run a little slower meanwhile; the stream is not
stopped. A rank whose write fails says so (`SAVED c FAILED`) and the run ends with one line.

`--resume DIR` loads the newest complete checkpoint into freshly built ranks (the record
rebuilt from the chain's chunks, exactly what a whole-record checkpoint held) and continues
with datum `c`, released at once (run time `arrival_s[c]`: the resumed run keeps the
stream's time axis); nothing before `c` runs again and nothing from `c` on is lost. The run
must be the same (plan, ranks, stream length, seed, algorithm and its settings): `meta.json`
is checked. On several machines DIR must be a folder every rank can reach (a shared file system).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import queue
import re
import shutil
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from executor.distributed import protocol
from executor.distributed.host import StageHost
from executor.distributed.source import StreamSource
from executor.distributed.watchdog import Watchdog
from executor.stage import UpdateResult
from executor.stage.checkpoint import load_stage_state, stage_state
from planner.errors import FerretError

META = "meta.json"
# The layout of a checkpoint, recorded in meta.json: a resume checks it before it loads anything.
# 2: the run's record (predictions, updates, staleness, rows, the source's lists) as one blob.
# 3: LwF's teacher and MAS's importance kept per stage (their generations, MAS's per-stage samples).
# 4: the record in one chunk per checkpoint and rank (`rank<r>-record-<c>.pkl`), `chain` in rank<r>.pt.
FORMAT = 4
# `SAVED c OUTCOME`: the rank has snapshotted (the stream may go on), has written, or could not write.
SNAPPED, WRITTEN, FAILED = 0, 1, 2
_ENTRY = re.compile(r"^(at-\d{9}|\.at-\d{9}\.partial)$")  # what a checkpoint folder holds


def check_root(root: Path, out: Path) -> None:
    """Refuse a checkpoint folder that holds anything but checkpoints (they would mix with the
    user's files), or that is, holds or lies in the run's output folder (replaced as a whole)."""
    real_root, real_out = os.path.realpath(root), os.path.realpath(out)
    if os.path.commonpath([real_root, real_out]) in (real_root, real_out):
        raise FerretError(f"--checkpoint-dir {root} and --out {out} overlap; the output folder is replaced as a whole")
    if root.exists() and not root.is_dir():
        raise FerretError(f"--checkpoint-dir {root} is not a folder")
    foreign = sorted(p.name for p in root.iterdir() if not _ENTRY.match(p.name)) if root.is_dir() else []
    if foreign:
        raise FerretError(
            f"--checkpoint-dir {root} holds {foreign[0]}, which is no checkpoint; give a new folder or one of checkpoints"
        )


def folder(root: Path, position: int) -> Path:
    return root / f"at-{position:09d}"


def partial_folder(root: Path, position: int) -> Path:
    return root / f".at-{position:09d}.partial"


def chunk_name(rank: int, end: int) -> str:
    """The file of `rank`'s record chunk that ends at checkpoint `end`."""
    return f"rank{rank}-record-{end:09d}.pkl"


@dataclass(frozen=True)
class Since:
    """Where this rank's record stood at its last checkpoint (or the one it resumed from, or the
    start): the next chunk holds what came after. `source_lo`: the source's first per-datum
    entry that may still change (a datum that waited for a mini-batch then); `chain`: the chunk
    files that hold the record up to `position`, in order."""

    position: int = 0
    rows: int = 0
    updates: int = 0
    predicted: int = 0
    source_lo: int = 0
    chain: tuple[str, ...] = ()


def snapshot(
    host: StageHost, source: StreamSource | None, position: int, since: Since
) -> tuple[dict[str, Any], dict[str, Any], Since]:
    """In the loop, the pipeline quiescent: this rank's state at checkpoint `position` as copies
    nothing later changes (`rank<r>.pt`'s content), its record chunk since `since`, and where
    the next chunk starts."""
    worker = host.worker
    host.settle_predictions()
    rows, updates, predicted = host.recorder.rows, host.updates, host.predicted
    # The wire threads may append rows meanwhile: what is there now is the checkpoint's.
    n_rows, n_updates, n_predicted = len(rows), len(updates), len(predicted)
    chunk: dict[str, Any] = {
        "start": since.position,
        "end": position,
        "rows": rows[since.rows : n_rows],  # tuples of immutables: a shallow slice is a snapshot
        "updates": [(stage, tuple(update), t) for stage, update, t in updates[since.updates : n_updates]],
        # Each datum is predicted once, so the new predictions are the dict's newest entries.
        "predicted": list(islice(predicted.items(), since.predicted, n_predicted)),
        "source": None,
    }
    tail, lo = None, since.source_lo
    if source is not None:
        lists = source.summary()
        waiting = lists.pop("waiting")  # per worker, bounded; the rest are one entry per datum
        chunk["source"] = {"lo": lo, "lists": {key: values[lo:position] for key, values in lists.items()}}
        # Nothing from `position` on was released: those entries are as the source made them.
        tail = {"n": source.n, "waiting": waiting, "fill": {key: values[position] for key, values in lists.items()}}
        lo = min([position, *(i for queue in waiting for i in queue)])
    name = chunk_name(host.rank, position)
    state: dict[str, Any] = {
        "position": position,
        "stages": {j: stage_state(runtime) for j, runtime in worker.stages.items()},  # clones
        "admitted": list(worker._admitted),
        "staleness": {j: list(h) for j, h in host.staleness.items()},
        "flops": worker.flops,
        "ops": host.ops,
        "busy_s": host.busy_s,
        "nonfinite_skipped": host.nonfinite_skipped,
        # The algorithm's state may share tensors with the live objects (ER's memory): copies,
        # since the writer thread pickles them while the stream goes on.
        "algorithm": copy.deepcopy(worker.algorithm.state_dict()),
        "source": tail,
        "chain": [*since.chain, name],
    }
    return state, chunk, Since(position, n_rows, n_updates, n_predicted, lo, (*since.chain, name))


def write(partial: Path, previous: Path | None, rank: int, state: dict[str, Any], chunk: dict[str, Any]) -> None:
    """In the writer thread: this rank's part of the checkpoint in `partial` — the chain's
    earlier chunks linked from the `previous` complete checkpoint, the new chunk, `rank<r>.pt`."""
    *earlier, name = state["chain"]
    for old in earlier:
        assert previous is not None, "a chain with earlier chunks comes from a complete checkpoint"
        _link(previous / old, partial / old)
    _replace_with(partial / name, lambda tmp: tmp.write_bytes(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)))
    _replace_with(partial / f"rank{rank}.pt", lambda tmp: torch.save(state, tmp))


def _link(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (no bytes copied), or a copy where links fail
    (another file system, or one without hard links)."""
    try:
        os.link(source, target)
    except OSError:
        _replace_with(target, lambda tmp: shutil.copyfile(source, tmp))


def _replace_with(target: Path, make: Any) -> None:
    tmp = target.with_name(target.name + ".tmp")
    make(tmp)
    os.replace(tmp, target)


def read_record(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    """This rank's record up to checkpoint `path`, rebuilt from the chunks of `state`'s chain
    (the chunks must follow each other from the stream's start to the checkpoint): the same
    record a whole-record checkpoint held — admitted, predicted, updates, staleness, rows and,
    on the source, its `summary()`."""
    rows: list[Any] = []
    updates: list[Any] = []
    predicted: dict[int, int] = {}
    lists: dict[str, list[Any]] = {}
    end = 0
    for name in state["chain"]:
        try:
            chunk = pickle.loads((path / name).read_bytes())
        except FileNotFoundError:
            raise FerretError(f"--resume {path}: its record chunk {name} is missing (rerun from the start)") from None
        if chunk["start"] != end:
            raise FerretError(
                f"--resume {path}: {name} starts at datum {chunk['start']}, the record before it at {end}"
            )
        end = chunk["end"]
        rows.extend(chunk["rows"])
        updates.extend(chunk["updates"])
        predicted.update(chunk["predicted"])
        if chunk["source"] is not None:
            lo = chunk["source"]["lo"]
            for key, values in chunk["source"]["lists"].items():
                mine = lists.setdefault(key, [])
                del mine[lo:]  # entries that changed since the previous chunk come again
                mine.extend(values)
    if end != state["position"]:
        raise FerretError(
            f"--resume {path}: its record chunks end at datum {end}, the checkpoint is at {state['position']}"
        )
    tail, summary = state["source"], None
    if tail is not None:
        summary = {key: mine + [tail["fill"][key]] * (tail["n"] - len(mine)) for key, mine in lists.items()}
        summary["waiting"] = tail["waiting"]
    return {
        "admitted": state["admitted"],
        "predicted": predicted,
        "updates": updates,
        "staleness": state["staleness"],
        "rows": rows,
        "source": summary,
    }


def load_rank(path: Path, host: StageHost, source: StreamSource | None) -> Since:
    """Restore this rank from checkpoint `path`; return where its record stands (the stream
    position to go on from, and the chain the next chunk extends)."""
    state = torch.load(path / f"rank{host.rank}.pt", map_location=host.worker.model_device, weights_only=False)
    record = read_record(path, state)
    worker = host.worker
    for j, runtime in worker.stages.items():
        load_stage_state(runtime, state["stages"][j])
    worker._admitted = list(record["admitted"])
    worker.flops = state["flops"]
    host.predicted.update(record["predicted"])
    host.updates.extend((stage, UpdateResult(*update), t) for stage, update, t in record["updates"])
    host.staleness.update({j: list(h) for j, h in record["staleness"].items()})
    host.ops = state["ops"]
    host.busy_s = state["busy_s"]
    host.nonfinite_skipped = state["nonfinite_skipped"]
    host.recorder.rows.extend(record["rows"])
    worker.algorithm.load_state_dict(state["algorithm"], worker.model)
    position = int(state["position"])
    lo = position
    if source is not None:
        if record["source"] is None:
            raise FerretError(f"--resume {path}: rank {host.rank} was not the stream's source in that run")
        source.restore(record["source"], position)
        lo = min([position, *(i for queue in record["source"]["waiting"] for i in queue)])
    counts = len(host.recorder.rows), len(host.updates), len(host.predicted)
    return Since(position, *counts, lo, tuple(state["chain"]))


def begin(root: Path, position: int) -> None:
    """The source opens checkpoint `position` (before any rank saves into it)."""
    partial = partial_folder(root, position)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)


def complete(root: Path, position: int, meta: dict[str, Any]) -> Path:
    """Every rank wrote its part: mark the checkpoint complete."""
    partial = partial_folder(root, position)
    (partial / META).write_text(
        json.dumps({**meta, "format": FORMAT, "position": position}, indent=1), encoding="utf-8"
    )
    final = folder(root, position)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    return final


def latest(root: Path) -> Path:
    """The newest complete checkpoint in `root` (or `root` itself when it is one)."""
    if (root / META).is_file():
        return root
    found = sorted(p for p in root.glob("at-*") if (p / META).is_file()) if root.is_dir() else []
    if not found:
        raise FerretError(f"--resume {root}: no complete checkpoint there (a folder at-<position> with {META})")
    return found[-1]


def read_meta(path: Path, expected: dict[str, Any]) -> dict[str, Any]:
    """`meta.json` of checkpoint `path`; one line naming the first setting (a field of a nested
    one, e.g. `algorithm.sampler`) in which it differs from this run's `expected`."""
    meta = json.loads((path / META).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise FerretError(
            f"--resume {path}: a checkpoint of format {meta.get('format', 1)}; this ferret reads format {FORMAT} "
            "(it was written by another version: rerun from the start)"
        )
    for key, value in expected.items():
        saved = meta.get(key)
        if saved != value and isinstance(saved, dict) and isinstance(value, dict):
            field = next(k for k in sorted(saved.keys() | value.keys()) if saved.get(k) != value.get(k))
            key, saved, value = f"{key}.{field}", saved.get(field), value.get(field)
        if saved != value:
            raise FerretError(
                f"--resume {path}: the checkpoint was made with {key} = {saved!r}, this run has {value!r}"
            )
    return meta


class RankCheckpoints:
    """One rank's side of the checkpoints: where its record stood at the last one, the
    snapshot in the loop, and the writer thread that writes it (one write at a time).

    `load` restores the rank from a checkpoint; `take` (on `CHECKPOINT`, or the source's own)
    snapshots, answers `SAVED c SNAPPED` (not on the source: its Checkpointer counts itself),
    and hands the write to its thread, which answers `SAVED c WRITTEN` (or `FAILED`); `wait` waits for a write
    still running (before the rank closes its channels)."""

    def __init__(self, host: StageHost, source: StreamSource | None = None) -> None:
        self.host = host
        self.source = source
        self.since = Since()
        self.previous: Path | None = None  # the complete checkpoint the chain's earlier chunks lie in
        # One writer thread for the run, started at the first checkpoint: handing it a write is
        # a queue put (starting a thread per checkpoint would wait for it to be scheduled).
        self._writes: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._writer: threading.Thread | None = None
        self._pending: Callable[[], None] | None = None  # a snapshot's write not handed over yet

    def load(self, path: Path) -> int:
        self.since = load_rank(path, self.host, self.source)
        self.previous = path
        return self.since.position

    def take(self, root: Path, position: int, start: bool = True) -> None:
        """Snapshot, answer, and hand the write over — or, `start=False` (the source), keep it
        until `start`: the source releases the stream first (once every rank snapshotted),
        before its writer thread competes for the interpreter's lock with the loop and the wire
        threads that bring the other ranks' `SAVED`."""
        self.wait()  # the source begins no checkpoint before the previous is complete: at once
        host = self.host
        state, chunk, self.since = snapshot(host, self.source, position, self.since)
        # The next checkpoint begins after this one is complete (renamed): its chunks lie there then.
        previous, self.previous = self.previous, folder(root, position)
        transport, to = host.transport, host.source
        if host.rank != to:
            transport.send(to, protocol.saved(position, SNAPPED))

        def job() -> None:
            outcome = WRITTEN
            try:
                write(partial_folder(root, position), previous, host.rank, state, chunk)
            except Exception:  # the source ends the run with one line; the detail goes here
                print(f"ferret run: rank {host.rank}: checkpoint at datum {position} not written:", file=sys.stderr)
                traceback.print_exc()
                outcome = FAILED
            transport.send(to, protocol.saved(position, outcome))

        self._idle.clear()
        self._pending = job
        if start:
            self.start()

    def start(self) -> None:
        """Hand the write of the last snapshot to the writer thread."""
        job, self._pending = self._pending, None
        assert job is not None, "a write to start comes from a snapshot"
        self._writes.put(job)
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="ferret-checkpoint", daemon=True)
            self._writer.start()

    def _write_loop(self) -> None:
        device = torch.device(self.host.worker.model_device)
        if device.type == "cuda":
            torch.cuda.set_device(device)  # per thread: copies of the rank's tensors stay on its device
        while True:
            self._writes.get()()
            self._idle.set()

    def wait(self) -> None:
        """Until the write handed over last is done (and answered)."""
        self._idle.wait()


class Checkpointer:
    """The source's side: pause the stream at every `every`-th datum, have every rank snapshot
    (then the stream goes on), collect every rank's write, complete the checkpoint. `tick` runs
    once per turn of the real-time loop; `finish` after it, for a write still running."""

    def __init__(
        self, root: Path, every: int, checkpoints: RankCheckpoints, source: StreamSource, meta: dict[str, Any]
    ) -> None:
        self.root = root
        self.every = every
        self.checkpoints = checkpoints
        self.host = host = checkpoints.host
        self.source = source
        self.meta = meta
        self.current: int | None = None  # the checkpoint begun and not yet complete
        self.snapped = self.written = 0
        host.on_saved = self.saved
        self._schedule((source.next // every + 1) * every)

    def _schedule(self, position: int) -> None:
        self.position = position
        self.source.pause_at = position if position < self.source.n else None

    def tick(self) -> None:
        source = self.source
        if self.current is not None or not source.paused or not source.quiescent:
            return
        position = self.current = self.position
        begin(self.root, position)
        transport = self.host.transport
        for rank in range(transport.world_size):
            if rank != self.host.rank:
                transport.send(rank, protocol.checkpoint(position))
        self.checkpoints.take(self.root, position, start=False)  # its write starts at `resume`
        self.saved(self.host.rank, position, SNAPPED)  # alone, the stream goes on at once

    def saved(self, src: int, position: int, outcome: int) -> None:
        if position != self.current:
            raise RuntimeError(f"rank {src} saved checkpoint {position} while {self.current} is being taken")
        if outcome == FAILED:
            raise FerretError(f"rank {src} could not write its part of the checkpoint at datum {position} (see above)")
        world = self.host.transport.world_size
        if outcome == SNAPPED:
            self.snapped += 1
            if self.snapped == world:  # every rank's state is copied: the stream may go on
                self.snapped = 0
                self.resume()
                self.checkpoints.start()
            return
        self.written += 1
        if self.written == world:  # (each rank's write follows its snapshot: every one snapshotted)
            self.written = 0
            self.current = None
            complete(self.root, position, self.meta)

    def resume(self) -> None:
        """Release arrivals again, up to the next checkpoint (which waits for this one's writes)."""
        assert self.current is not None
        self._schedule(self.current + self.every)

    def finish(self, watchdog: Watchdog) -> None:
        """After the loop: a checkpoint still being written completes before the source closes."""
        transport = self.host.transport
        self.checkpoints.wait()  # this rank's own `WRITTEN` is in its inbox then
        with watchdog.waiting(lambda: f"every rank's write of the checkpoint at datum {self.current}"):
            while self.current is not None:
                got = transport.receive(None)
                if got is not None:
                    self.host.receive(*got)
