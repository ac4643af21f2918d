"""Export a trace as Chrome trace JSON (opens in Perfetto / chrome://tracing), one track per device.

Compute ops (`fwd`, `recompute`, `bwd`, `update`) and link transfers become complete ("X")
slices on their device's track; arrivals and drops are instant marks on a `stream` track;
`mem` rows become one memory counter per device. Every row kind has a view, so event `i` is
row `i`. Written a chunk at a time and column-wise: the rows of one kind (and with or without
`bytes`) share one `%`-template, formatted from the chunk's columns as plain lists and put back
in row order, with no branch per row (a browser UI slows down past a few hundred thousand
events, so a long run is cut at `max_events` and says so).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from planner.fileio import atomic_path
from sim.trace import KINDS, Chunk

STREAM_TRACK = 1_000_000  # tid of the arrivals/drops track, after every device's
_SLICE_KINDS = frozenset({"fwd", "recompute", "bwd", "update", "send", "recv", "predict"})
_INSTANT_KINDS = frozenset({"arrive", "drop"})


def _template(kind: str, with_bytes: bool) -> str:
    """The line of one event of `kind` (`%`-fields in `_columns`' order), with its separator."""
    if kind in _SLICE_KINDS:
        name = kind + (" s%d" if kind == "update" else " %d s%d")
        args = '"sample":%d,"worker":%d,"stage":%d,"version":%d'
        if kind in ("bwd", "update"):
            args += ',"staleness":%d'
        if kind == "update":
            args += ',"samples":[%s]'
        if with_bytes:
            args += ',"bytes":%d'
        return '{"name":"' + name + '","cat":"' + kind + '","ph":"X","ts":%s,"dur":%s,"pid":0,"tid":%d,"args":{' + args + "}},\n"  # fmt: skip
    if kind in _INSTANT_KINDS:
        return (
            '{"name":"' + kind + ' %d","cat":"' + kind + '","ph":"i","s":"t","ts":%s,"pid":0,"tid":'
            + str(STREAM_TRACK) + ',"args":{"sample":%d,"worker":%d}},\n'
        )  # fmt: skip
    return '{"name":"memory device %d","ph":"C","ts":%s,"pid":0,"args":{"bytes":%d}},\n'  # mem


def _columns(
    kind: str, with_bytes: bool, rows: dict[str, np.ndarray], samples: list[str] | None, known: dict[float, str]
) -> list[list[Any]]:
    """The fields of `_template(kind, with_bytes)`, in its order, for `rows` (all of that kind);
    `known`: the reprs of times so far."""
    ts = _reprs((rows["t_start"] * 1e6).tolist(), known)
    if kind in _INSTANT_KINDS:
        sample = rows["sample"].tolist()
        return [sample, ts, sample, rows["worker"].tolist()]
    if kind not in _SLICE_KINDS:  # mem
        return [rows["device"].tolist(), ts, rows["bytes"].tolist()]
    dur = _reprs(((rows["t_end"] - rows["t_start"]) * 1e6).tolist(), known)
    sample, stage = rows["sample"].tolist(), rows["stage"].tolist()
    name = [stage] if kind == "update" else [sample, stage]
    cols = [*name, ts, dur, rows["device"].tolist(), sample, rows["worker"].tolist(), stage, rows["version"].tolist()]
    if kind in ("bwd", "update"):
        cols.append(rows["staleness"].tolist())
    if samples is not None:
        cols.append(samples)
    if with_bytes:
        cols.append(rows["bytes"].tolist())
    return cols


def _reprs(values: list[float], known: dict[float, str]) -> list[str]:
    """`repr` of each value, computed once per distinct value of the whole view (`known`): a
    float's shortest repr is the dearest field to format (~7,000 instructions for 17 digits),
    and times repeat (an op starts as another ends, rows of several kinds share a time, few
    durations)."""
    for v in set(values).difference(known):
        known[v] = repr(v)
    return [known[v] for v in values]


# Slices show `bytes` when it is not 0; a counter always shows it, an instant never.
_SHOWS_BYTES = np.array([kind in _SLICE_KINDS for kind in KINDS])
_FIELDS = ("sample", "worker", "stage", "device", "t_start", "t_end", "version", "staleness", "bytes")
_TEMPLATES = {(code, b): _template(kind, b) for code, kind in enumerate(KINDS) for b in (False, True)}


def _lines(chunk: Chunk, known: dict[float, str]) -> list[str]:
    """The chunk's events, one line each, in row order (`known`: `_reprs`')."""
    rows = chunk.rows
    kinds = rows["kind"]
    with_bytes = (rows["bytes"] != 0) & _SHOWS_BYTES[kinds]
    ends = np.cumsum(rows["nsamples"]).tolist()
    all_samples = chunk.samples.tolist()
    out = np.empty(len(rows), dtype=object)
    for code in np.flatnonzero(np.bincount(kinds, minlength=len(KINDS))).tolist():
        for b in (False, True):
            at = np.flatnonzero((kinds == code) & (with_bytes == b))
            if not len(at):
                continue
            samples = None
            if KINDS[code] == "update":
                samples = [
                    ",".join(map(str, all_samples[ends[i] - n : ends[i]]))
                    for i, n in zip(at.tolist(), rows["nsamples"][at].tolist(), strict=True)
                ]
            group = {name: rows[name][at] for name in _FIELDS}  # field by field: numpy's fast path
            columns = _columns(KINDS[code], b, group, samples, known)
            out[at] = list(map(_TEMPLATES[code, b].__mod__, zip(*columns, strict=True)))
    return out.tolist()


def track_metadata(devices: Iterable[int]) -> list[dict[str, Any]]:
    """Names and order of the tracks: one per device, then the stream."""
    out: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "ferret sim"}}]
    for d in sorted(devices):
        out.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": d, "args": {"name": f"device {d}"}})
        out.append({"name": "thread_sort_index", "ph": "M", "pid": 0, "tid": d, "args": {"sort_index": d}})
    out.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": STREAM_TRACK, "args": {"name": "stream"}})
    return out


def write_chrome_trace(chunks: Iterable[Chunk], path: str | os.PathLike[str], max_events: int | None = None) -> int:
    """Write the rows of `chunks` (`sim.trace_files.read_chunks`) as a Chrome trace JSON file
    (atomically); return the number of events written.

    `max_events` caps the number of events; the file then says `"truncated": true` in
    `otherData`. Reading stops at the cap, so a capped view of a long trace costs only its size.
    """
    count = 0
    truncated = False
    devices: set[int] = set()
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    known: dict[float, str] = {}
    with atomic_path(path) as tmp, Path(tmp).open("w", encoding="utf-8") as f:
        f.write('{"displayTimeUnit":"ms","traceEvents":[\n')
        for chunk in chunks:
            if max_events is not None and count + len(chunk.rows) > max_events:
                keep = max_events - count
                truncated = True
                ends = np.cumsum(chunk.rows["nsamples"][:keep])
                chunk = Chunk(chunk.rows[:keep], chunk.samples[: int(ends[-1]) if keep else 0])
            devices.update(chunk.rows["device"][chunk.rows["device"] >= 0].tolist())
            f.write("".join(_lines(chunk, known)))
            count += len(chunk.rows)
            if truncated:
                break
        f.write(",\n".join(dumps(m) for m in track_metadata(devices)))
        f.write('\n],"otherData":' + dumps({"source": "ferret sim", "truncated": truncated}) + "}\n")
    return count
