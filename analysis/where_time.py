"""Where a datum's time goes in a run's measured trace, and where each rank's time goes.

    ferret breakdown RUN_FOLDER [--json]      (analysis/commands/breakdown.py)

Reads a run folder of `ferret run --plan` (a distributed run's merged `trace.jsonl` above all;
a twin's or replay's trace works too) and follows every trained datum along its ops — forward
through every stage, backward down to the lowest stage that trained. Between the arrival and
its last backward's end, each moment of the datum's life falls in exactly one part:

* `own ops`: its own forward and backward ops running;
* `behind ops`: its input was there, and the rank that owned its next op ran other data's ops;
* `outside ops`: its input was there, and that rank ran no op — the executor's loop, a wait
  that had not yet noticed the input, or the thread off its core;
* `to wire`: from the op that made a message to its `send` starting (the sender thread's wake);
* `wire`: from the `send` starting to the `recv` ending on the other rank.

The first op's wait (arrival → its first forward) is `admission`, split the same way (behind /
outside ops); it includes time queued in front of a worker whose window was full. The parts add
up to the datum's latency exactly. Per rank: the share of its span in ops, and what its
`summary.json` says of its idle waits (the rest is the loop); per op kind and stage, measured
durations beside the profile's; per channel, how much of the span a `send` was under way
(near 1: the channel is the queue); at each drop, how many data its worker held.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.run_folder import RunFolder, load_run_folder
from analysis.trace_table import KIND_NAMES, TraceTable, load_table
from planner.closed_form import stage_sums

PARTS = ("admission_behind", "admission_outside", "own_ops", "behind_ops", "outside_ops", "to_wire", "wire")
OPS = ("fwd", "recompute", "bwd")


@dataclass(frozen=True)
class Span:
    """One row's time span (seconds) on its rank."""

    start: float
    end: float
    device: int


@dataclass(frozen=True)
class OpStat:
    """Durations (seconds) of one op kind at one stage on one rank, and the profile's time for it."""

    device: int
    kind: str
    stage: int
    count: int
    mean_s: float
    p50_s: float
    p90_s: float
    profile_s: float | None


@dataclass(frozen=True)
class RankShare:
    """One rank's span (its first op's start to its last op's end) and how it was spent."""

    device: int
    span_s: float
    ops_s: float
    idle_s: float | None  # from summary.json's per_rank (the loop's waits); None if absent
    sending_s: float  # sum of its `send` spans: how long its channel(s) had a transfer under way


@dataclass(frozen=True)
class TimeSplit:
    """A run's time, per trained datum (`parts_s`: mean seconds per part, see the module docstring)."""

    trained: int
    dropped: int
    latency_s: float  # mean, arrival → its last backward's end
    parts_s: dict[str, float]
    ranks: list[RankShare]
    ops: list[OpStat]
    held_at_drop: float | None  # mean data of its worker arrived before and not done when a datum was dropped
    window: int  # the most data a worker holds (P)


def split_time(table: TraceTable, num_stages: int, profile_s: dict[tuple[str, int], float] | None = None,
               idle_s: dict[int, float] | None = None) -> TimeSplit:  # fmt: skip
    """The time split of one trace (see the module docstring); `profile_s[(kind, stage)]`: the
    profile's op time, `idle_s[device]`: each rank's idle waits, both optional."""
    kinds = [KIND_NAMES[int(k)] for k in table.kind]
    ops: dict[int, dict[tuple[str, int], Span]] = defaultdict(dict)
    sends: dict[tuple[int, int], list[Span]] = defaultdict(list)
    recvs: dict[tuple[int, int], list[Span]] = defaultdict(list)
    per_device: dict[int, list[tuple[float, float]]] = defaultdict(list)
    arrival: dict[int, float] = {}
    worker_of: dict[int, int] = {}
    sending: dict[int, float] = defaultdict(float)
    drops: list[tuple[float, int]] = []
    for i, kind in enumerate(kinds):
        sample, stage, device = int(table.sample[i]), int(table.stage[i]), int(table.device[i])
        span = Span(float(table.t_start[i]), float(table.t_end[i]), device)
        if kind in OPS:
            per_device[device].append((span.start, span.end))
            if kind != "recompute":
                ops[sample].setdefault((kind, stage), span)
        elif kind == "send":
            sends[(sample, stage)].append(span)
            sending[device] += span.end - span.start
        elif kind == "recv":
            recvs[(sample, stage)].append(span)
        elif kind == "arrive":
            arrival[sample] = span.start
            worker_of[sample] = int(table.worker[i])
        elif kind == "drop":
            drops.append((span.start, int(table.worker[i])))
    busy = {d: _Busy(spans) for d, spans in per_device.items()}
    paths = {s: _path(s, arrival[s], ops[s], sends, recvs, busy, num_stages) for s in ops if s in arrival}
    done = {s: p for s, p in paths.items() if p is not None}
    parts = {part: float(np.mean([p[0][part] for p in done.values()])) if done else 0.0 for part in PARTS}
    latency = float(np.mean([p[1] for p in done.values()])) if done else 0.0
    return TimeSplit(
        trained=len(done),
        dropped=len(drops),
        latency_s=latency,
        parts_s=parts,
        ranks=_ranks(per_device, sending, idle_s or {}),
        ops=_op_stats(table, kinds, profile_s or {}),
        held_at_drop=_held_at_drop(drops, done, arrival, worker_of),
        window=num_stages,
    )


class _Busy:
    """One rank's op spans, for the overlap of an interval with them."""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        spans.sort()
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]

    def overlap(self, a: float, b: float) -> float:
        total = 0.0
        i = max(0, bisect_right(self.starts, a) - 1)
        while i < len(self.starts) and self.starts[i] < b:
            total += max(0.0, min(self.ends[i], b) - max(self.starts[i], a))
            i += 1
        return total


def _path(
    sample: int,
    arrived: float,
    mine: dict[tuple[str, int], Span],
    sends: dict[tuple[int, int], list[Span]],
    recvs: dict[tuple[int, int], list[Span]],
    busy: dict[int, _Busy],
    P: int,
) -> tuple[dict[str, float], float] | None:
    """The parts of one datum's life (None: not trained), and its latency."""
    steps = [("fwd", j) for j in range(P)] + [("bwd", j) for j in reversed(range(P))]
    if ("bwd", P - 1) not in mine or ("fwd", 0) not in mine:
        return None
    parts = dict.fromkeys(PARTS, 0.0)
    prev: Span | None = None
    for kind, j in steps:
        op = mine.get((kind, j))
        if op is None:  # below the lowest stage that trained (freezing)
            break
        ready = arrived if prev is None else prev.end
        sent = got = None
        if prev is not None and prev.device != op.device:  # a message: the first (activation) or last (gradient)
            sent = sends.get((sample, j - 1 if kind == "fwd" else j + 1))
            got = recvs.get((sample, j))
        if sent and got:  # (a twin whose links cost nothing writes no transfer rows)
            pick = 0 if kind == "fwd" else -1
            parts["to_wire"] += sent[pick].start - ready
            parts["wire"] += got[pick].end - sent[pick].start
            ready = got[pick].end
        behind = busy[op.device].overlap(ready, op.start)
        behind_part, outside_part = (
            ("admission_behind", "admission_outside") if prev is None else ("behind_ops", "outside_ops")
        )
        parts[behind_part] += behind
        parts[outside_part] += op.start - ready - behind
        parts["own_ops"] += op.end - op.start
        prev = op
    assert prev is not None
    return parts, prev.end - arrived


def _ranks(
    per_device: dict[int, list[tuple[float, float]]], sending: dict[int, float], idle_s: dict[int, float]
) -> list[RankShare]:
    return [
        RankShare(
            device=device,
            span_s=max(e for _, e in spans) - min(s for s, _ in spans),
            ops_s=sum(e - s for s, e in spans),
            idle_s=idle_s.get(device),
            sending_s=sending[device],
        )
        for device, spans in sorted(per_device.items())
    ]


def _op_stats(table: TraceTable, kinds: list[str], profile_s: dict[tuple[str, int], float]) -> list[OpStat]:
    groups: dict[tuple[int, str, int], list[float]] = defaultdict(list)
    for i, kind in enumerate(kinds):
        if kind in OPS:
            groups[(int(table.device[i]), kind, int(table.stage[i]))].append(float(table.t_end[i] - table.t_start[i]))
    return [
        OpStat(
            d, k, j, len(v), float(np.mean(v)), float(np.median(v)), float(np.quantile(v, 0.9)), profile_s.get((k, j))
        )
        for (d, k, j), v in sorted(groups.items())
    ]


def _held_at_drop(
    drops: list[tuple[float, int]],
    done: dict[int, tuple[dict[str, float], float]],
    arrival: dict[int, float],
    worker_of: dict[int, int],
) -> float | None:
    """Mean data the dropped datum's worker held (arrived before, not yet done) at each drop."""
    if not drops:
        return None
    end = {s: arrival[s] + latency for s, (_, latency) in done.items()}
    held = [
        sum(1 for s, e in end.items() if worker_of.get(s) == w and arrival[s] < t < e)
        for t, w in drops
    ]  # fmt: skip
    return float(np.mean(held))


def profile_times(run: RunFolder) -> dict[tuple[str, int], float] | None:
    """The profile's forward and backward time per stage of the run's plan (None: no profile)."""
    if run.profile is None:
        return None
    sums = stage_sums(run.profile, [run.plan.partition])
    return {
        **{("fwd", j): float(t) for j, t in enumerate(sums.t_fwd)},
        **{("bwd", j): float(t) for j, t in enumerate(sums.t_bwd)},
    }


def split_run(path: str | Path) -> TimeSplit:
    """`split_time` of a run folder, with its profile and its ranks' idle waits when it has them."""
    run = load_run_folder(path, "run folder")
    idle = {int(r["rank"]): float(r["idle_s"]) for r in run.summary.get("per_rank", []) if "idle_s" in r}
    return split_time(load_table(run.trace_path), run.plan.num_stages, profile_times(run), idle)


def render(split: TimeSplit) -> str:
    ms = 1e3
    lines = [f"{split.trained} data trained, {split.dropped} dropped; mean latency {ms * split.latency_s:.2f} ms"]
    lines.append("per trained datum, mean ms: " + ", ".join(f"{p} {ms * v:.2f}" for p, v in split.parts_s.items()))
    if split.held_at_drop is not None:
        lines.append(f"at a drop its worker held {split.held_at_drop:.2f} data on average (window {split.window})")
    lines += ["", "| rank | span s | in ops | idle | loop (the rest) | sending | ops ms per trained datum |"]
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for r in split.ranks:
        idle = "-" if r.idle_s is None else f"{r.idle_s / r.span_s:.0%}"
        loop = "-" if r.idle_s is None else f"{(r.span_s - r.ops_s - r.idle_s) / r.span_s:.0%}"
        per = ms * r.ops_s / max(split.trained, 1)
        lines.append(
            f"| {r.device} | {r.span_s:.3f} | {r.ops_s / r.span_s:.0%} | {idle} | {loop} | "
            f"{r.sending_s / r.span_s:.0%} | {per:.2f} |"
        )
    lines += ["", "| rank | op | stage | n | mean ms | p50 ms | p90 ms | profile ms | p50 / profile |"]
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for o in split.ops:
        prof = "-" if o.profile_s is None else f"{ms * o.profile_s:.3f}"
        ratio = "-" if not o.profile_s else f"{o.p50_s / o.profile_s:.1f}"
        lines.append(
            f"| {o.device} | {o.kind} | {o.stage} | {o.count} | {ms * o.mean_s:.3f} | {ms * o.p50_s:.3f} | "
            f"{ms * o.p90_s:.3f} | {prof} | {ratio} |"
        )
    return "\n".join(lines)
