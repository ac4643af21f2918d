"""What a distributed checkpoint costs: its size on disk, the time to save and to load it per
rank, and how long the run stands still while it is written.

    python benchmarks/checkpoint_cost.py [--models mnistnet,mobilenetv2] [--samples 80] [--every 20]
                                         [--interval-ms 40] [--repeats 5]

Each case is a real `ferret run --mode distributed --checkpoint-every EVERY` on digits (8×8
inputs; a roofline profile; `ferret plan --budget max --devices D`), then the same run resumed
with `--resume`: er on 2 ranks (stages on both), LwF and MAS on 1 rank (the executor runs them
only when one rank owns every stage). aL-SAR is refused by the distributed executor (its batches
hold no prediction of the datum), so it has no checkpoint to measure; its learned state
(memory, sampler) is ER's. Inside the ranks (this script is the rank's program) the
checkpoint's functions are wrapped with clocks:

* save: `save_rank` per rank and checkpoint (wall and thread CPU) — snapshot, pickling, write;
* load: `load_rank` per rank in the resumed run (read, unpickle, copy into the fresh ranks);
* stall: on the source, from `begin` (the pipeline is quiescent, the source asks every rank to
  save) to `complete` (every rank answered, the folder renamed): no op runs on any rank and no
  arrival is released meanwhile. Before `begin` the pipeline drains (ops still run).

Then, in this process, each rank's file is read back (`torch.load`, best of REPEATS) and
written again (`torch.save`, best of REPEATS) — the file's own I/O, without the run around it —
and its size is split into what the stages and the algorithm need to go on and the run's record
so far (trace rows, predictions, updates, staleness, the source's per-datum lists: one pickled
blob), which grows with the stream position; the record is also encoded both ways — one
`pickle.dumps`, as `save_rank` does, and through `torch.save`'s pickler, as it used to be (which
calls back into Python for every object).
Numbers vary with the load (printed); run under `nice` on a shared machine.
"""

from __future__ import annotations

import argparse
import io
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
from executor.distributed import checkpoint, rank  # noqa: E402
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
    save = timed(events, "save", checkpoint.save_rank, lambda root, position, host, source: host.rank)
    load = timed(events, "load", rank.load_rank, lambda path, host, source: host.rank)
    checkpoint.save_rank = rank.save_rank = save  # the Checkpointer's and the other ranks'
    rank.load_rank = load
    checkpoint.begin = timed(events, "begin", checkpoint.begin, lambda root, position: 0)
    checkpoint.complete = timed(events, "complete", checkpoint.complete, lambda *a: 0)
    return ferret(args.run)


def stalls(lines: list[dict[str, Any]]) -> list[float]:
    """begin → complete on the source, per checkpoint (begin's own time included)."""
    begins = [line["at"] - line["wall_s"] for line in lines if line["kind"] == "begin"]
    completes = [line["at"] for line in lines if line["kind"] == "complete"]
    return [c - b for b, c in zip(begins, completes, strict=True)]


def pickled(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def best(fn: Callable[[], Any], repeats: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeats))


def file_io(path: Path, repeats: int) -> dict[str, float]:
    """The file's size and parts; its write and read (best of `repeats`); the run's record
    encoded as the checkpoint does (one `pickle.dumps`) and as `torch.save` would."""
    state = torch.load(path, weights_only=False)
    record = pickle.loads(state["record"].numpy().tobytes())
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "again.pt"
        write_s = best(lambda: torch.save(state, copy), repeats)
    return {
        "bytes": path.stat().st_size,
        "learned": path.stat().st_size - state["record"].numel(),
        "record": state["record"].numel(),
        "record_pickle_s": best(lambda: pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL), repeats),
        "record_torch_s": best(lambda: pickled(record), repeats),
        "write_s": write_s,
        "read_s": best(lambda: torch.load(path, weights_only=False), repeats),
    }


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
    return {
        "model": model,
        "algorithm": name,
        "ranks": ranks,
        "save": {r: [line for line in saved if line["kind"] == "save" and line["rank"] == r] for r in range(ranks)},
        "load": {line["rank"]: line for line in loads},
        "stall_s": stalls(saved),
        "files": {r: file_io(newest / f"rank{r}.pt", args.repeats) for r in range(ranks)},
        "position": int(newest.name.removeprefix("at-")),
        "bytes_at": {
            f.name: [(f / f"rank{r}.pt").stat().st_size for r in range(ranks)] for f in sorted(checkpoints.glob("at-*"))
        },
    }


def report(cases: list[dict]) -> None:
    ms = 1e3
    print("| model | algorithm | rank | size, KiB (learned + record) | save, ms (wall / CPU, mean of checkpoints) "
          "| load, ms | file write / read, ms (best) | the record: pickle / torch.save, ms | stall, ms (mean, max) |")  # fmt: skip
    print("|" + " --- |" * 9)
    for c in cases:
        stall = c["stall_s"]
        for r, f in c["files"].items():
            saves = c["save"][r]
            wall = sum(s["wall_s"] for s in saves) / len(saves)
            cpu = sum(s["cpu_s"] for s in saves) / len(saves)
            print(
                f"| {c['model']} | {c['algorithm']} | {r} of {c['ranks']} "
                f"| {f['bytes'] / 1024:.0f} ({f['learned'] / 1024:.0f} + {f['record'] / 1024:.0f}) "
                f"| {wall * ms:.1f} / {cpu * ms:.1f} | {c['load'][r]['wall_s'] * ms:.1f} "
                f"| {f['write_s'] * ms:.1f} / {f['read_s'] * ms:.1f} | {f['record_pickle_s'] * ms:.1f} / {f['record_torch_s'] * ms:.1f} "
                f"| {sum(stall) / len(stall) * ms:.1f}, {max(stall) * ms:.1f} |"
            )


def growth(cases: list[dict]) -> None:
    """Each checkpoint's size per rank: the record grows with the stream position."""
    print("\nsize per rank by position, KiB:")
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
