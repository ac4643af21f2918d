"""Export a trace as Chrome trace JSON (opens in Perfetto / chrome://tracing), one track per device.

Compute ops (`fwd`, `recompute`, `bwd`, `update`) and link transfers become complete ("X")
slices on their device's track; arrivals and drops are instant marks on a `stream` track;
`mem` rows become one memory counter per device. Written streaming, event by event, with
`%`-templates (a browser UI slows down past a few hundred thousand events, so a long run is cut
at `max_events` and says so).
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
_SLICE = '{"name":"%s","cat":"%s","ph":"X","ts":%r,"dur":%r,"pid":0,"tid":%d,"args":{%s}}'
_INSTANT = '{"name":"%s %d","cat":"%s","ph":"i","s":"t","ts":%r,"pid":0,"tid":%d,"args":{"sample":%d,"worker":%d}}'
_COUNTER = '{"name":"memory device %d","ph":"C","ts":%r,"pid":0,"args":{"bytes":%d}}'


def track_metadata(devices: Iterable[int]) -> list[dict[str, Any]]:
    """Names and order of the tracks: one per device, then the stream."""
    out: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "ferret sim"}}]
    for d in sorted(devices):
        out.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": d, "args": {"name": f"device {d}"}})
        out.append({"name": "thread_sort_index", "ph": "M", "pid": 0, "tid": d, "args": {"sort_index": d}})
    out.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": STREAM_TRACK, "args": {"name": "stream"}})
    return out


def _convert(ev: TraceRow) -> str | None:
    kind = ev.kind
    ts = ev.t_start * 1e6
    if kind in _SLICE_KINDS:
        args = f'"sample":{ev.sample},"worker":{ev.worker},"stage":{ev.stage},"version":{ev.version}'
        if kind in ("bwd", "update"):
            args += f',"staleness":{ev.staleness}'
        if kind == "update":
            args += ',"samples":[' + ",".join(map(str, ev.samples)) + "]"
        if ev.bytes:
            args += f',"bytes":{ev.bytes}'
        name = f"{kind} s{ev.stage}" if kind == "update" else f"{kind} {ev.sample} s{ev.stage}"
        return _SLICE % (name, kind, ts, (ev.t_end - ev.t_start) * 1e6, ev.device, args)
    if kind in ("arrive", "drop"):
        return _INSTANT % (kind, ev.sample, kind, ts, STREAM_TRACK, ev.sample, ev.worker)
    if kind == "mem":
        return _COUNTER % (ev.device, ts, ev.bytes)
    return None


def write_chrome_trace(events: Iterable[TraceRow], path: str | os.PathLike[str], max_events: int | None = None) -> int:
    """Write `events` as a Chrome trace JSON file (atomically); return the number of events written.

    `max_events` caps the number of converted events; the file then says `"truncated": true` in
    `otherData`. Reading stops at the cap, so a capped view of a long trace costs only its size.
    """
    count = 0
    truncated = False
    devices: set[int] = set()
    lines: list[str] = []
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
            lines.append(out)
            count += 1
            if len(lines) >= 8192:
                f.write(",\n".join(lines) + ",\n")
                lines.clear()
        if lines:
            f.write(",\n".join(lines) + ",\n")
        f.write(",\n".join(dumps(m) for m in track_metadata(devices)))
        f.write('\n],"otherData":' + dumps({"source": "ferret sim", "truncated": truncated}) + "}\n")
    return count
