"""Compute ops of a measured trace as observations for the fit: what each row is, how long it
took, and how crowded its device and host were when its job started.

The twin's cost model, which calibration fits (docs/sim.md §1): a job on stage `j` lasts
`(base + op_overhead) · (1 + slowdown·m) · jitter`, where `m` is the number of jobs already
running on its device when it starts. A backward job is its `recompute` row (T1), its `bwd`
row and, when it closes a gradient group, its `update` row, back to back on one lane; so the
row types, each with its own linear cost, are:

| row type | cost before the contention and jitter factor |
| --- | --- |
| `fwd` | `Σ t_fwd(l∈j) + overhead` |
| `recompute` | `Σ t_rec(l∈j) + overhead` |
| `bwd` | `Σ t_bwd(l∈j) + overhead` |
| `bwd` after a recompute | `Σ t_bwd(l∈j)` (the job's overhead was paid by its recompute row) |
| `update` | `update_s` |

`m` counts the other jobs with `start ≤ t < end` on the device; jobs that start at the same
instant are ordered by how much slower than their group they ran (the twin starts them one
after another, so the later ones see the earlier ones running). `host` counts jobs running on
the other devices of the same host (one host unless a run says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.trace_table import KIND_CODES, TraceTable
from sim.algorithm_passes import NO_PASSES, AlgorithmPasses

FWD, RECOMPUTE, BWD, BWD_AFTER_RECOMPUTE, UPDATE = range(5)
ROW_TYPES = ("fwd", "recompute", "bwd", "bwd after recompute", "update")


@dataclass(frozen=True, eq=False)
class OpObservations:
    """Compute rows of one trace: their type, stage, duration and job."""

    row_type: np.ndarray
    stage: np.ndarray
    duration: np.ndarray
    job: np.ndarray  # job index of each row
    job_start: np.ndarray  # per job
    job_end: np.ndarray
    job_device: np.ndarray

    def __len__(self) -> int:
        return len(self.row_type)


def observe(table: TraceTable, passes: AlgorithmPasses = NO_PASSES) -> OpObservations:
    """Group `table`'s compute rows into jobs and label each row with its type. A `fwd` row's
    duration is its training forward's: LwF's teacher runs inside the op (`passes.with_forward`
    forwards of the same rows, from datum `passes.from_sample` on: sim/algorithm_passes.py), and
    the twin charges it on top of the fitted forward, so the row counts `1 + with_forward` forwards.
    (The twin charges one op overhead for them; dividing the row divides it too, so the fitted
    forward and overhead come out short by at most `with_forward / (1 + with_forward)` of the
    overhead — against charging the teacher twice.)"""
    k = table.kind
    fwd = np.flatnonzero(k == KIND_CODES["fwd"])
    rec = np.flatnonzero(k == KIND_CODES["recompute"])
    bwd = np.flatnonzero(k == KIND_CODES["bwd"])
    upd = np.flatnonzero(k == KIND_CODES["update"])
    stride = int(table.stage.max()) + 1 if len(table) else 1

    def key(rows: np.ndarray) -> np.ndarray:
        return table.sample[rows] * stride + table.stage[rows]

    rec_of = dict(zip(key(rec).tolist(), rec.tolist(), strict=True))
    bwd_of = dict(zip(key(bwd).tolist(), bwd.tolist(), strict=True))

    rows: list[int] = []
    types: list[int] = []
    jobs: list[int] = []
    starts: list[float] = []
    ends: list[float] = []
    for i in fwd.tolist():
        rows.append(i)
        types.append(FWD)
        jobs.append(len(starts))
        starts.append(float(table.t_start[i]))
        ends.append(float(table.t_end[i]))
    job_of_bwd: dict[int, int] = {}
    for i, kk in zip(bwd.tolist(), key(bwd).tolist(), strict=True):
        job = len(starts)
        job_of_bwd[i] = job
        r = rec_of.get(kk)
        if r is not None:
            rows += [r, i]
            types += [RECOMPUTE, BWD_AFTER_RECOMPUTE]
            jobs += [job, job]
            starts.append(float(table.t_start[r]))
        else:
            rows.append(i)
            types.append(BWD)
            jobs.append(job)
            starts.append(float(table.t_start[i]))
        ends.append(float(table.t_end[i]))
    for i in upd.tolist():
        closing = table.update_samples[i][-1] if table.update_samples[i] else -1
        b = bwd_of.get(closing * stride + int(table.stage[i])) if closing >= 0 else None
        contiguous = b is not None and table.t_start[i] == table.t_end[b] and table.device[i] == table.device[b]
        if contiguous:
            job = job_of_bwd[b]  # type: ignore[index]
            ends[job] = max(ends[job], float(table.t_end[i]))
        else:  # a step on its own (a flush at the end of the stream, or an executor that times it apart)
            job = len(starts)
            starts.append(float(table.t_start[i]))
            ends.append(float(table.t_end[i]))
        rows.append(i)
        types.append(UPDATE)
        jobs.append(job)
    index = np.asarray(rows, dtype=np.int64)
    job_of_row = np.asarray(jobs, dtype=np.int64)
    job_device = np.zeros(len(starts), dtype=np.int64)
    job_device[job_of_row] = table.device[index]
    row_type = np.asarray(types, dtype=np.int64)
    duration = table.duration[index]
    if passes.with_forward:
        inside = (row_type == FWD) & (table.sample[index] >= passes.from_sample)
        duration = np.where(inside, duration / (1.0 + passes.with_forward), duration)
    return OpObservations(
        row_type=row_type,
        stage=table.stage[index],
        duration=duration,
        job=job_of_row,
        job_start=np.asarray(starts),
        job_end=np.asarray(ends),
        job_device=job_device,
    )


def running_at_start(start: np.ndarray, end: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per job: the jobs of its `group` (device or host) running when it starts, `start < s < end`.
    One that ends as it starts has freed its lane (the twin's order); one that starts at the same
    instant is a tie, resolved by `contention`."""
    running = np.zeros(len(start), dtype=np.int64)
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        s, e = start[sel], end[sel]
        started_before = np.searchsorted(np.sort(s), s, side="left")
        ended_by = np.searchsorted(np.sort(e), s, side="right")
        # ended_by also counts zero-length jobs at `s`, which never started before it
        zero = np.sort(s[e == s])
        zero_here = np.searchsorted(zero, s, side="right") - np.searchsorted(zero, s, side="left")
        running[sel] = started_before - ended_by + zero_here
    return running


def tie_rank(group: np.ndarray, start: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Per job: how many jobs of its `group` start at the same instant before it, ordered by
    `ratio` (the faster one started first, so it saw fewer running)."""
    order = np.lexsort((ratio, start, group))
    g, s = group[order], start[order]
    new_block = np.r_[True, (g[1:] != g[:-1]) | (s[1:] != s[:-1])]
    block_first = np.maximum.accumulate(np.where(new_block, np.arange(len(order)), 0))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - block_first
    return rank


def tied(obs: OpObservations) -> np.ndarray:
    """Per row: whether its job started at the same instant as another job of its host."""
    _, first, counts = np.unique(obs.job_start, return_inverse=True, return_counts=True)
    return (counts[first] > 1)[obs.job]


def contention(
    obs: OpObservations, ratio: np.ndarray, hosts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(`m`, `k`) per row: jobs already running on its device, and on its host's other devices.

    `ratio` (per job: how much slower than its group's base it ran) orders jobs that start at
    the same instant: the twin starts them one after another, and a later one sees the earlier.
    """
    start, end, device = obs.job_start, obs.job_end, obs.job_device
    host = np.zeros_like(device) if hosts is None else hosts[device]
    on_device = running_at_start(start, end, device)
    device_rank = tie_rank(device, start, ratio)
    m = on_device + device_rank
    elsewhere = running_at_start(start, end, host) - on_device + tie_rank(host, start, ratio) - device_rank
    return m[obs.job], elsewhere[obs.job]
