"""What each rank measured, gathered on rank 0 and merged into one `RunResult`.

Every rank sends a `RankReport` (its trace rows, the updates its stages applied, predictions
made at its last stage, its memory and work) through the default process group; rank 0 merges
them: per datum its prediction (`-1`: none was made), the lowest stage its backward reached,
and when each stage first applied its gradient — so `trained_at_s`, latency and the
adaptation rate come out exactly as the replay computes them (records.py). The final weights
of every stage are installed in rank 0's model for the test-set evaluation.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from executor.compensation import EfficacyLog
from executor.distributed.trace import Row
from executor.stage import StageRuntime


@dataclass
class RankReport:
    """What one rank measured, sent to rank 0 at the end of a run and merged there.

    Trace rows, applied updates `(stage, version, staleness, samples, t)`, staleness counts per stage,
    last-stage predictions (sample → class), final weights of its stages, and its work and memory totals
    (FLOPs, busy seconds, peak bytes).
    """

    rank: int
    stages: tuple[int, ...]
    rows: list[Row]
    updates: list[tuple[int, int, int, tuple[int, ...], float]]  # (stage, version, staleness, samples, t)
    staleness: dict[int, list[int]]  # stage → gradients applied by staleness
    predicted: dict[int, int]
    weights: dict[str, torch.Tensor]  # the model's parameter names → this rank's stages' final weights
    final_lambda: dict[int, float | None]
    compensated: tuple[int, ...]  # owned stages with a compensator that acts (not `none`)
    efficacy: dict[int, EfficacyLog]  # owned stage → its compensation efficacy samples
    ops: int
    nonfinite_skipped: int
    flops: float
    busy_s: float
    ledger_peak: int
    saved_peak: int
    f4_peak: int
    peak_by_category: dict[str, int]
    rss_peak_bytes: int
    cuda_peak_bytes: int | None
    clock: dict[str, Any]
    ready_s: float  # when the rank was ready, relative to the stream clock's start (startup.py; ≤ 0)
    start_late_s: float  # how late its loop began after the start
    wire_bytes_sent: int
    wall_s: float  # the rank's run loop, from the start to STOP
    idle_s: float  # of it, waiting with nothing to do (real time; 0 in lockstep)
    loop_cpu_s: float  # the loop thread's CPU time (robust to a loaded machine, unlike wall time)
    ops_cpu_s: float  # of it, inside StageRuntime calls
    threads: dict[str, dict[str, float]]  # per thread role, CPU and run-queue seconds of the loop (threads.py)
    source: dict[str, Any] = field(default_factory=dict)  # the source's per-datum arrays (else empty)
    # Budgeted OCL: per owned stage, backwards a frozen prefix reduced to a release and (lockstep)
    # update rows that applied nothing; the algorithm's own numbers (freezing: the last stage's).
    frozen_backwards: dict[int, int] = field(default_factory=dict)
    trace_updates_skipped: dict[int, int] = field(default_factory=dict)
    algorithm: dict[str, float] = field(default_factory=dict)


def stage_weights(names: dict[int, tuple[str, ...]], stages: dict[int, StageRuntime]) -> dict[str, torch.Tensor]:
    """The current weights of the given stages under the model's parameter names (CPU copies)."""
    out = {}
    for j, runtime in stages.items():
        for name, param in zip(names[j], runtime.versions.current.params, strict=True):
            out[name] = param.detach().to("cpu", copy=True)
    return out


def rss_peak_bytes() -> int:
    """This process's peak resident set (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def cuda_peak_bytes(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def update_times(reports: list[RankReport], n: int, P: int) -> np.ndarray:
    """`[datum, stage]`: the run time of the first update at the stage that applied its gradient."""
    out = np.full((n, P), np.nan)
    for report in reports:
        for stage, _version, _staleness, samples, t in report.updates:
            column = out[:, stage]
            for s in samples:
                if np.isnan(column[s]):
                    column[s] = t
    return out
