"""Checkpoints of a real-time run, and resuming from one.

`--checkpoint-every S`: when datum `c = k·S` is due, the source stops releasing arrivals and
lets every datum before `c` finish (trained or dropped); the pipeline is then quiescent —
nothing in flight on any rank — and the source asks every rank (`CHECKPOINT c`) to save what
its future depends on into `DIR/.at-c.partial/rank<r>.pt`:

* per owned stage, the StageRuntime's state (executor/stage/checkpoint.py: weights and
  version, optimizer and compensator state, open accumulation groups, omission counters);
* what the algorithm learned besides the weights (`OCLAlgorithm.state_dict`: adaptive
  freezing's statistics — each rank its own copy, whose Fisher traces of its own layers are
  the truth; ER's memory and sampler, which the source draws from and teaches; LwF's teacher,
  MAS's importances and anchor);
* the omission counter of every worker's admissions;
* what the run measured so far (predictions, updates, staleness, trace rows, op counts) and,
  on the source, the stream's position `c` with its per-datum records. These grow with `c`:
  they are pickled as one blob ("record"), ~10× cheaper than through torch.save's pickler.

When every rank has answered (`SAVED c`) the source writes `meta.json` and renames the folder
to `DIR/at-c` — a folder without `.partial` is complete — then releases arrivals again (the
data that came meanwhile are admitted or dropped by the usual rules: a checkpoint costs
availability, as it would in production).

`--resume DIR` loads the newest complete checkpoint into freshly built ranks and continues
with datum `c`, released at once (run time `arrival_s[c]`: the resumed run keeps the
stream's time axis); nothing before `c` runs again and nothing from `c` on is lost. The run
must be the same (plan, ranks, stream length, seed, algorithm and its settings): `meta.json`
is checked.
On several machines DIR must be a folder every rank can reach (a shared file system).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from executor.distributed import protocol
from executor.distributed.host import StageHost
from executor.distributed.source import StreamSource
from executor.stage import UpdateResult
from executor.stage.checkpoint import load_stage_state, stage_state
from planner.errors import FerretError

META = "meta.json"
# The layout of `rank<r>.pt`, recorded in meta.json: a resume checks it before it loads anything.
# 2: the run's record (predictions, updates, staleness, rows, the source's lists) as one blob.
# 3: LwF's teacher and MAS's importance kept per stage (their generations, MAS's per-stage samples).
FORMAT = 3
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


def save_rank(root: Path, position: int, host: StageHost, source: StreamSource | None) -> None:
    """This rank's part of checkpoint `position` (the pipeline is quiescent)."""
    worker = host.worker
    host.settle_predictions()
    record = {
        "admitted": list(worker._admitted),
        "predicted": dict(host.predicted),
        "updates": [(stage, tuple(update), t) for stage, update, t in host.updates],
        "staleness": {j: list(h) for j, h in host.staleness.items()},
        "rows": list(host.recorder.rows),
        "source": None if source is None else source.summary(),
    }
    state: dict[str, Any] = {
        "position": position,
        "stages": {j: stage_state(runtime) for j, runtime in worker.stages.items()},
        "flops": worker.flops,
        "ops": host.ops,
        "busy_s": host.busy_s,
        "nonfinite_skipped": host.nonfinite_skipped,
        "algorithm": worker.algorithm.state_dict(),
        # torch.save's pickler calls back into Python for every object: ~10x slower on a long
        # trace than one pickle.dumps (benchmarks/checkpoint_cost.py); as a tensor, the blob is
        # written raw (torch.save's protocol-2 pickle would re-encode bytes as latin-1 text).
        "record": torch.frombuffer(
            bytearray(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)), dtype=torch.uint8
        ),
    }
    target = partial_folder(root, position) / f"rank{host.rank}.pt"
    tmp = target.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, target)


def begin(root: Path, position: int) -> None:
    """The source opens checkpoint `position` (before any rank saves into it)."""
    partial = partial_folder(root, position)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)


def complete(root: Path, position: int, meta: dict[str, Any]) -> Path:
    """Every rank saved: mark the checkpoint complete."""
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


def load_rank(path: Path, host: StageHost, source: StreamSource | None) -> int:
    """Restore this rank from checkpoint `path`; return the stream position to go on from."""
    state = torch.load(path / f"rank{host.rank}.pt", map_location=host.worker.model_device, weights_only=False)
    record = pickle.loads(state["record"].cpu().numpy().tobytes())  # map_location may have moved it
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
    if source is not None:
        if record["source"] is None:
            raise FerretError(f"--resume {path}: rank {host.rank} was not the stream's source in that run")
        source.restore(record["source"], state["position"])
    return int(state["position"])


class Checkpointer:
    """The source's side: pause the stream at every `every`-th datum, collect every rank's
    `SAVED`, complete the checkpoint, go on. `tick` runs once per turn of the real-time loop."""

    def __init__(self, root: Path, every: int, host: StageHost, source: StreamSource, meta: dict[str, Any]) -> None:
        self.root = root
        self.every = every
        self.host = host
        self.source = source
        self.meta = meta
        self.acks = 0
        self.started = False
        host.on_checkpoint = lambda position: save_rank(root, position, host, None)
        host.on_saved = self.saved
        self._schedule((source.next // every + 1) * every)

    def _schedule(self, position: int) -> None:
        self.position = position
        self.source.pause_at = position if position < self.source.n else None

    def tick(self) -> None:
        source = self.source
        if self.started or not source.paused or not source.quiescent:
            return
        self.started = True
        begin(self.root, self.position)
        transport = self.host.transport
        for rank in range(transport.world_size):
            if rank != self.host.rank:
                transport.send(rank, protocol.checkpoint(self.position))
        save_rank(self.root, self.position, self.host, source)
        self.saved(self.position)

    def saved(self, position: int) -> None:
        if position != self.position:
            raise RuntimeError(f"rank saved checkpoint {position} while {self.position} is being taken")
        self.acks += 1
        if self.acks == self.host.transport.world_size:
            complete(self.root, self.position, self.meta)
            self.acks = 0
            self.started = False
            self._schedule(self.position + self.every)
