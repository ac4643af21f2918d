"""`loop_s`: the executor's own time between two ops on a device, from the gaps in its trace.

An op row spans the compute call alone; what the rank's loop does between two calls (route the
output, take the wire's messages, release the source's arrivals, pick the next op) lies
between the rows. The twin charges it to the device with every job (`SimConfig.loop_s`), so
only gaps where the device had work are the loop's:

**Readiness rule.** A job (a `fwd`; a `bwd` with its `recompute` in front, the twin's one
backward job) was ready at the latest end, before it started, of its datum's earlier rows on
its device — its previous op there or the `recv` of its activation or gradient — or of the
datum's `arrive` row. Each job that was ready by the time the device's previous job ended
gives one gap: its start minus that end. Gaps over 20× their median (a rank preempted by
another process, a page fault) are left out of the mean, as they are of the ops' mean
(`contention._tail_sigma`); `loop_s` is the mean of the rest, over every device of every
distributed run (a busy rank gives the most gaps, and it bounds the rate).

A job whose message or arrival came during the previous op waits longer (the loop takes the
message and admits the datum first) than one its own rank handed over; such gaps enter the mean
in the proportion the calibration run had them. A rank at a higher rate takes more of its
messages between ops rather than while idle, so it pays somewhat more per job than `loop_s`.

Only distributed runs have such a loop. A replay runs the twin's own schedule, one op at a
time, and a twin charges its loop inside the op rows (no gap between ready jobs): for them
`loop_s` is 0, not fitted.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from analysis.calibrate.params import Fitted, fixed
from analysis.run_folder import REAL_TIME_SOURCES
from analysis.trace_table import KIND_CODES, TraceTable

TAIL = 20.0  # gaps over TAIL × the median are a preempted rank, not the loop
_FWD, _REC, _BWD = KIND_CODES["fwd"], KIND_CODES["recompute"], KIND_CODES["bwd"]
_RECV, _ARRIVE = KIND_CODES["recv"], KIND_CODES["arrive"]


@dataclass(frozen=True)
class DeviceGaps:
    """The loop gaps (seconds) of one device of one trace, between jobs that were ready."""

    device: int
    gaps: np.ndarray


def ready_gaps(table: TraceTable) -> list[DeviceGaps]:
    """Per device of `table`, the gaps before each job that was ready when the previous one ended."""
    kind, sample = table.kind, table.sample
    arrived = {int(s): float(t) for s, t in zip(sample[kind == _ARRIVE], table.t_end[kind == _ARRIVE], strict=True)}
    out = []
    compute = np.isin(kind, (_FWD, _REC, _BWD))
    for device in np.unique(table.device[compute]).tolist():
        mine = table.device == device
        ends: dict[int, list[float]] = {}
        seen = np.flatnonzero(mine & (compute | (kind == _RECV)))
        for i in seen[np.argsort(table.t_end[seen], kind="stable")].tolist():
            ends.setdefault(int(sample[i]), []).append(float(table.t_end[i]))
        starts, stops, ready = _jobs(table, np.flatnonzero(mine & compute), ends, arrived)
        gaps = [b - e for b, r, e in zip(starts[1:], ready[1:], stops[:-1], strict=True) if r <= e <= b]
        out.append(DeviceGaps(int(device), np.array(gaps, dtype=np.float64)))
    return out


def _jobs(
    table: TraceTable, rows: np.ndarray, ends: dict[int, list[float]], arrived: dict[int, float]
) -> tuple[list[float], list[float], list[float]]:
    """The device's jobs in start order: (start, end, ready) each; a `bwd` right after its own
    `recompute` joins it (one backward job, as the twin runs it)."""
    rows = rows[np.argsort(table.t_start[rows], kind="stable")]
    starts: list[float] = []
    stops: list[float] = []
    ready: list[float] = []
    last: tuple[int, int] | None = None  # (sample, stage) of a recompute just run
    for i in rows.tolist():
        key = (int(table.sample[i]), int(table.stage[i]))
        start, end = float(table.t_start[i]), float(table.t_end[i])
        if table.kind[i] == _BWD and last == key:
            stops[-1] = end
            last = None
            continue
        last = key if table.kind[i] == _REC else None
        before = ends.get(key[0], [])
        k = bisect.bisect_right(before, start) - 1
        inputs = [before[k]] if k >= 0 else []
        if key[0] in arrived and arrived[key[0]] <= start:
            inputs.append(arrived[key[0]])
        starts.append(start)
        stops.append(end)
        ready.append(max(inputs) if inputs else np.inf)
    return starts, stops, ready


def fit_loop(tables: list[tuple[str, TraceTable]]) -> Fitted:
    """`loop_s` from runs given as (source, table): see the module docstring."""
    distributed = [table for source, table in tables if source in REAL_TIME_SOURCES]
    if not distributed:
        return fixed("loop_s", 0.0, "s", "no distributed run (a replay or twin has no executor loop between ops)")
    per_device = [d for table in distributed for d in ready_gaps(table)]
    gaps = np.concatenate([d.gaps for d in per_device]) if per_device else np.zeros(0)
    if not len(gaps):
        return fixed("loop_s", 0.0, "s", "no job was ready before its device's previous job ended")
    cap = TAIL * float(np.median(gaps))
    kept = gaps[gaps <= cap]
    devices = ", ".join(
        f"{d.device}: {1e6 * float(np.mean(d.gaps[d.gaps <= cap])):.3g} µs ({len(d.gaps)})"
        for d in per_device
        if (d.gaps <= cap).any()
    )
    stderr = float(np.std(kept, ddof=1) / np.sqrt(len(kept))) if len(kept) > 1 else 0.0
    how = (
        f"mean of {len(kept)} gaps between ready jobs ({len(gaps) - len(kept)} over {TAIL:g}× the median left out; "
        f"per device, with its gaps: {devices})"
    )
    return Fitted("loop_s", float(np.mean(kept)), stderr, "s", how)
