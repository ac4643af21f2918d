"""What a distributed checkpoint costs: what it writes per rank, how long the stream stands
still for it, the time to snapshot, to write and to load per rank.

    python benchmarks/checkpoint_cost.py [--models mnistnet,mobilenetv2] [--samples 80] [--every 20]
                                         [--interval-ms 40] [--repeats 5]

Each case is a real `ferret run --mode distributed --checkpoint-every EVERY` on digits (8×8
inputs; a roofline profile; `ferret plan --budget max --devices D`), then the same run resumed
with `--resume`: ER on 2 ranks (stages on both), LwF and MAS on 1 rank (they run across ranks
too; one rank keeps the cases few and measures the path where one rank holds the whole model's
state and answers itself). aL-SAR is refused by the distributed executor (its batches hold no
prediction of the datum), so it has no checkpoint to measure; its learned state (memory,
sampler) is ER's. Inside the ranks (this script is the rank's program) the checkpoint's
functions (executor/distributed/checkpoint.py) are wrapped with clocks:

* snapshot: `snapshot` per rank and checkpoint, in the loop (wall and thread CPU) — copies of
  the state and the record's new entries;
* write: `write` per rank and checkpoint, in the rank's writer thread while the stream goes on
  — links of the earlier chunks, the new chunk's pickle, `torch.save` of the state;
* load: `load_rank` per rank in the resumed run (read, rebuild the record from the chunks,
  copy into the fresh ranks);
* stall: on the source, from `begin` (the pipeline is quiescent, the source asks every rank to
  snapshot) to `Checkpointer.resume` (every rank snapshotted, arrivals are released again): no
  arrival is released meanwhile. Before `begin` the pipeline drains (ops still run);
* until complete: `begin` to `complete` (every rank wrote, the folder renamed: the checkpoint
  can be resumed from).

Then, in this process, the newest checkpoint's files are measured per rank: what it wrote
(`rank<r>.pt`, the weights and what the algorithm learned, and the new record chunk) and the
whole record its chain holds (what a whole-record checkpoint, format 3, wrote every time);
`rank<r>.pt`'s write and read (best of REPEATS), and the record chunk's `pickle.dumps` against
the whole record's (best of REPEATS). Numbers vary with the load (printed); run under `nice` on
a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.cli import main as ferret  # noqa: E402
from executor.distributed import checkpoint  # noqa: E402
from executor.distributed.context import under_launcher  # noqa: E402
from executor.distributed.launch import launch_local  # noqa: E402

CASES: tuple[tuple[str, int, list[str]], ...] = (
    ("er", 2, []),
    ("lwf", 1, ["--consolidate-every", "20"]),
    ("mas", 1, ["--consolidate-every", "20"]),
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mnistnet,mobilenetv2")
    parser.add_argument("--samples", type=int, default=80)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=40.0, help="arrival interval of mnistnet; ×5 for others")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many file reads and writes")
    parser.add_argument("--events", type=Path, default=None, help="(internal) where a rank appends its timings")
    parser.add_argument("run", nargs=argparse.REMAINDER, help="(internal) the rank's `ferret run` arguments")
    return parser.parse_args(argv)


def timed(events: Path, kind: str, fn: Callable[..., Any], rank_of: Callable[..., int]) -> Callable[..., Any]:
    """`fn`, appending one line per call to `events`: its wall and thread-CPU seconds."""

    def wrapper(*args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        result = fn(*args)
        line = {"kind": kind, "rank": rank_of(*args), "wall_s": time.perf_counter() - wall}
        line.update(cpu_s=time.thread_time() - cpu, at=time.perf_counter())
        with events.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        return result

    return wrapper


def rank_main(args: argparse.Namespace) -> int:
    """A rank: wrap the checkpoint's functions with clocks, then run `ferret run` as usual."""
    events = args.events
    checkpoint.snapshot = timed(events, "snapshot", checkpoint.snapshot, lambda host, *rest: host.rank)
    checkpoint.write = timed(events, "write", checkpoint.write, lambda partial, previous, rank, *rest: rank)
    checkpoint.load_rank = timed(events, "load", checkpoint.load_rank, lambda path, host, source: host.rank)
    checkpoint.begin = timed(events, "begin", checkpoint.begin, lambda root, position: 0)
    checkpoint.complete = timed(events, "complete", checkpoint.complete, lambda *a: 0)
    resume = checkpoint.Checkpointer.resume
    checkpoint.Checkpointer.resume = timed(events, "resume", resume, lambda self: 0)  # type: ignore[method-assign]
    return ferret(args.run)


def spans(lines: list[dict[str, Any]], until: str) -> list[float]:
    """`begin` → `until` (`resume` or `complete`) on the source, per checkpoint (begin's own time included)."""
    begins = [line["at"] - line["wall_s"] for line in lines if line["kind"] == "begin"]
    ends = [line["at"] for line in lines if line["kind"] == until]
    return [e - b for b, e in zip(begins, ends, strict=True)]


def best(fn: Callable[[], Any], repeats: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeats))


def file_io(newest: Path, rank: int, repeats: int) -> dict[str, float]:
    """What checkpoint `newest` wrote for `rank` and the whole record its chain holds; the
    state file's write and read (best of `repeats`); the new chunk's pickle and the whole record's."""
    path = newest / f"rank{rank}.pt"
    position = int(newest.name.removeprefix("at-"))
    state = torch.load(path, weights_only=False)
    chunk = newest / checkpoint.chunk_name(rank, position)
    record = checkpoint.read_record(newest, state)
    new_chunk = pickle.loads(chunk.read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "again.pt"
        write_s = best(lambda: torch.save(state, copy), repeats)
    return {
        "state": path.stat().st_size,
        "chunk": chunk.stat().st_size,
        "record": sum((newest / name).stat().st_size for name in state["chain"]),
        "chunk_pickle_s": best(lambda: pickle.dumps(new_chunk, protocol=pickle.HIGHEST_PROTOCOL), repeats),
        "record_pickle_s": best(lambda: pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL), repeats),
        "write_s": write_s,
        "read_s": best(lambda: torch.load(path, weights_only=False), repeats),
    }


def written(folder: Path, rank: int) -> int:
    """The bytes checkpoint `folder` wrote for `rank`: its state and its new record chunk (the
    earlier chunks are links)."""
    chunk = checkpoint.chunk_name(rank, int(folder.name.removeprefix("at-")))
    return (folder / f"rank{rank}.pt").stat().st_size + (folder / chunk).stat().st_size


def run_case(work: Path, model: str, name: str, ranks: int, flags: list[str], args: argparse.Namespace) -> dict:
    profile, plan = work / f"{model}.json", work / f"{model}-plan-{ranks}.json"
    if not plan.exists():
        assert (
            ferret(["plan", "--profile", str(profile), "--budget", "max", "--devices", str(ranks), "--out", str(plan)])
            == 0
        )
    interval = args.interval_ms * (1 if model == "mnistnet" else 5)
    case = work / f"{model}-{name}"
    out, checkpoints, events = case / "run", case / "checkpoints", case / "events.jsonl"
    run = ["run", "--plan", str(plan), "--mode", "distributed", "--dataset", "digits", "--profile", str(profile),
           "--model", model, "--samples", str(args.samples), "--arrival-interval", f"{interval}ms",
           "--algorithm", name, *flags, "--checkpoint-every", str(args.every), "--checkpoint-dir", str(checkpoints),
           "--out", str(out)]  # fmt: skip
    prefix = [__file__, "--events", str(events)]
    case.mkdir()
    launch_local([*prefix, *run], ranks)
    saved = [json.loads(line) for line in events.read_text().splitlines()]
    launch_local([*prefix, *run, "--resume", str(checkpoints)], ranks)
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    loads = [line for line in lines[len(saved) :] if line["kind"] == "load"]
    newest = sorted(checkpoints.glob("at-*"))[-1]
    of = lambda kind, r: [line for line in saved if line["kind"] == kind and line["rank"] == r]  # noqa: E731
    return {
        "model": model,
        "algorithm": name,
        "ranks": ranks,
        "snapshot": {r: of("snapshot", r) for r in range(ranks)},
        "write": {r: of("write", r) for r in range(ranks)},
        "load": {line["rank"]: line for line in loads},
        "stall_s": spans(saved, "resume"),
        "complete_s": spans(saved, "complete"),
        "files": {r: file_io(newest, r, args.repeats) for r in range(ranks)},
        "position": int(newest.name.removeprefix("at-")),
        "bytes_at": {f.name: [written(f, r) for r in range(ranks)] for f in sorted(checkpoints.glob("at-*"))},
    }


def report(cases: list[dict]) -> None:
    ms, kib = 1e3, 1024
    print("| model | algorithm | rank | written, KiB (state + new chunk) | whole record, KiB | snapshot, ms (wall / CPU) "
          "| write, ms (wall / CPU, in the background) | load, ms | state file write / read, ms (best) "
          "| pickle: new chunk / whole record, ms | stall, ms (mean, max) | until complete, ms (mean) |")  # fmt: skip
    print("|" + " --- |" * 12)
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    for c in cases:
        stall, done = c["stall_s"], c["complete_s"]
        for r, f in c["files"].items():
            snaps, writes = c["snapshot"][r], c["write"][r]
            print(
                f"| {c['model']} | {c['algorithm']} | {r} of {c['ranks']} "
                f"| {(f['state'] + f['chunk']) / kib:.0f} ({f['state'] / kib:.0f} + {f['chunk'] / kib:.0f}) "
                f"| {f['record'] / kib:.0f} "
                f"| {mean([s['wall_s'] for s in snaps]) * ms:.1f} / {mean([s['cpu_s'] for s in snaps]) * ms:.1f} "
                f"| {mean([w['wall_s'] for w in writes]) * ms:.1f} / {mean([w['cpu_s'] for w in writes]) * ms:.1f} "
                f"| {c['load'][r]['wall_s'] * ms:.1f} | {f['write_s'] * ms:.1f} / {f['read_s'] * ms:.1f} "
                f"| {f['chunk_pickle_s'] * ms:.1f} / {f['record_pickle_s'] * ms:.1f} "
                f"| {mean(stall) * ms:.1f}, {max(stall) * ms:.1f} | {mean(done) * ms:.1f} |"
            )


def growth(cases: list[dict]) -> None:
    """What each checkpoint wrote per rank: the record's new chunk, not the record so far."""
    print("\nwritten per rank by position, KiB:")
    for c in cases:
        sizes = "; ".join(
            f"{name}: {', '.join(f'{b / 1024:.0f}' for b in per_rank)}" for name, per_rank in c["bytes_at"].items()
        )
        print(f"  {c['model']} {c['algorithm']}: {sizes}")


def main(argv: list[str]) -> int:
    args = parse(argv)
    if under_launcher():
        return rank_main(args)
    torch.set_num_threads(1)
    started = time.perf_counter()
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for model in args.models.split(","):
            roofline = ["--model", model, "--input-shape", "1,8,8", "--device", "roofline:titan-xp"]
            assert ferret(["profile", *roofline, "--out", str(work / f"{model}.json")]) == 0
            for name, ranks, flags in CASES:
                cases.append(run_case(work, model, name, ranks, flags, args))
    print(
        f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.samples} data, a checkpoint every "
        f"{args.every}; sizes of the newest checkpoint; {time.perf_counter() - started:.0f} s in all"
    )
    report(cases)
    growth(cases)
    print("\naL-SAR: refused by the distributed executor (memory-only batches), so no checkpoint; its state is ER's.")
    print(json.dumps(cases, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
