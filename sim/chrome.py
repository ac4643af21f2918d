"""Export a trace as Chrome trace JSON (opens in Perfetto / chrome://tracing), one track per device.

Compute ops (`fwd`, `recompute`, `bwd`, `update`) and link transfers become complete ("X")
slices on their device's track; arrivals and drops are instant marks on a `stream` track;
`mem` rows become one memory counter per device. Written streaming, event by event.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from planner.fileio import atomic_path
from sim.trace import TraceRow

STREAM_TRACK = 1_000_000  # tid of the arrivals/drops track, after every device's
_SLICE_KINDS = frozenset({"fwd", "recompute", "bwd", "update", "send", "recv", "predict"})


def track_metadata(devices: Iterable[int]) -> list[dict[str, Any]]:
    """Names and order of the tracks: one per device, then the stream."""
    out: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "ferret sim"}}]
    for d in sorted(devices):
        out.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": d, "args": {"name": f"device {d}"}})
        out.append({"name": "thread_sort_index", "ph": "M", "pid": 0, "tid": d, "args": {"sort_index": d}})
    out.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": STREAM_TRACK, "args": {"name": "stream"}})
    return out


def _convert(ev: TraceRow) -> dict[str, Any] | None:
    ts = ev.t_start * 1e6
    if ev.kind in _SLICE_KINDS:
        args: dict[str, Any] = {"sample": ev.sample, "worker": ev.worker, "stage": ev.stage, "version": ev.version}
        if ev.kind in ("bwd", "update"):
            args["staleness"] = ev.staleness
        if ev.kind == "update":
            args["samples"] = list(ev.samples)
        if ev.bytes:
            args["bytes"] = ev.bytes
        name = f"{ev.kind} s{ev.stage}" if ev.kind == "update" else f"{ev.kind} {ev.sample} s{ev.stage}"
        return {
            "name": name,
            "cat": ev.kind,
            "ph": "X",
            "ts": ts,
            "dur": (ev.t_end - ev.t_start) * 1e6,
            "pid": 0,
            "tid": ev.device,
            "args": args,
        }
    if ev.kind in ("arrive", "drop"):
        return {
            "name": f"{ev.kind} {ev.sample}",
            "cat": ev.kind,
            "ph": "i",
            "s": "t",
            "ts": ts,
            "pid": 0,
            "tid": STREAM_TRACK,
            "args": {"sample": ev.sample, "worker": ev.worker},
        }
    if ev.kind == "mem":
        return {"name": f"memory device {ev.device}", "ph": "C", "ts": ts, "pid": 0, "args": {"bytes": ev.bytes}}
    return None


def write_chrome_trace(events: Iterable[TraceRow], path: str | os.PathLike[str], max_events: int | None = None) -> int:
    """Write `events` as a Chrome trace JSON file (atomically); return the number of events written.

    `max_events` caps the number of converted events (browser UIs struggle past a few hundred
    thousand); the file then says `"truncated": true` in `otherData`.
    """
    count = 0
    truncated = False
    devices: set[int] = set()
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with atomic_path(path) as tmp, Path(tmp).open("w", encoding="utf-8") as f:
        f.write('{"displayTimeUnit":"ms","traceEvents":[\n')
        for ev in events:
            out = _convert(ev)
            if out is None:
                continue
            if max_events is not None and count >= max_events:
                truncated = True
                break
            if ev.device >= 0:
                devices.add(ev.device)
            f.write(dumps(out) + ",\n")
            count += 1
        f.write(",\n".join(dumps(m) for m in track_metadata(devices)))
        f.write('\n],"otherData":' + dumps({"source": "ferret sim", "truncated": truncated}) + "}\n")
    return count
