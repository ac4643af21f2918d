"""The twin's per-device stall process (`sim.stalls`), fitted to real-time runs.

A rank that other processes deschedule holds every op it has in hand at once for milliseconds
(docs/FIDELITY.md, "Stalls come in bursts"). In a trace that shows as a compute row far over its
cell's median, or a gap between two ready jobs far over the device's usual loop gap. Both are
**stalls** when their excess — the row's duration less its cell's median, the gap less its
device's median gap — is over `STALL_MIN_S` (2 ms: a scheduler time slice under load is a few
ms; the body of the op times, 0.1–1 ms ops with a log-std ≤ 0.8, almost never reaches it) and a
row's is also over `STALL_MIN_RATIO − 1` times its median (a long op's normal spread is not a stall).

- The durations are the excesses (sorted; beyond `MAX_FACTORS` of them, that many quantiles,
  as `factors.quantile_table` takes them).
- The rate is stalls per second of time in which a stall would have shown: the devices' time in
  compute rows and in gaps between ready jobs, stall excess not counted. (A stall while a rank
  waits for input is not seen, and changes nothing the twin computes either.)
- The stall rows are returned too: the `empirical` op-time factors are then fitted with their
  excess taken out (the row at its cell's median), else a stall would count twice, once as an
  interval and once as a factor. Stall gaps are left out of `loop_s` already (over 20× its median).

Only real-time runs (`distributed`) have stalls to fit; replays and twin runs give none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.calibrate.factors import MAX_FACTORS, quantile_table
from analysis.calibrate.jobs import OpObservations
from analysis.calibrate.loop import ready_gaps
from analysis.calibrate.params import Fitted, fixed
from analysis.trace_table import TraceTable
from sim.stalls import StallTable

STALL_MIN_S = 2e-3
STALL_MIN_RATIO = 3.0


@dataclass(frozen=True)
class StallFit:
    """The fitted process (None: no stall seen), its report lines, and which rows were stalls."""

    table: StallTable | None
    rate: Fitted
    mean: Fitted
    rows: np.ndarray  # bool per observed row (all runs, in `calibrate`'s order): its excess is a stall


def fit_stalls(runs: list[tuple[bool, TraceTable, OpObservations]], log_ratio: np.ndarray) -> StallFit:
    """From each run (real time?, its table, its observations) and each row's `log(duration / cell
    median)` (all runs' rows in order; NaN where not in a cell)."""
    rows = np.zeros(len(log_ratio), dtype=bool)
    excesses: list[np.ndarray] = []
    exposure = 0.0
    at = 0
    real_time = 0
    for live, table, obs in runs:
        n = len(obs)
        if live:
            real_time += 1
            ratio = np.exp(log_ratio[at : at + n])
            with np.errstate(invalid="ignore"):
                excess = obs.duration * (1.0 - 1.0 / ratio)
                stall = np.isfinite(ratio) & (ratio > STALL_MIN_RATIO) & (excess > STALL_MIN_S)
            rows[at : at + n] = stall
            excesses.append(excess[stall])
            exposure += float(obs.duration.sum() - excess[stall].sum())
            for device in ready_gaps(table):
                gaps = device.gaps
                if not len(gaps):
                    continue
                over = gaps - float(np.median(gaps))
                held = over > STALL_MIN_S
                excesses.append(over[held])
                exposure += float(gaps.sum() - over[held].sum())
        at += n
    durations = np.sort(np.concatenate(excesses)) if excesses else np.zeros(0)
    if not real_time:
        why = "no real-time run (replay and twin runs follow the twin's own schedule)"
        return StallFit(None, fixed("stall_rate_per_s", 0.0, "/s", why), fixed("stall_mean_s", 0.0, "s", why), rows)
    if not len(durations) or exposure <= 0:
        why = f"no op or ready gap over its median by more than {1e3 * STALL_MIN_S:g} ms in the real-time runs"
        return StallFit(None, fixed("stall_rate_per_s", 0.0, "/s", why), fixed("stall_mean_s", 0.0, "s", why), rows)
    count = len(durations)
    rate = count / exposure
    fitted = StallTable(rate, tuple(quantile_table(durations, MAX_FACTORS).tolist()))
    spread = float(np.std(durations, ddof=1) / math.sqrt(count)) if count > 1 else 0.0
    return StallFit(
        fitted,
        Fitted(
            "stall_rate_per_s",
            rate,
            math.sqrt(count) / exposure,
            "/s",
            f"{count} stalls (ops and ready gaps over their median by > {1e3 * STALL_MIN_S:g} ms) in "
            f"{exposure:.3g} s of device time (compute and ready gaps) of {real_time} real-time run(s)",
        ),
        Fitted(
            "stall_mean_s",
            float(durations.mean()),
            spread,
            "s",
            f"mean of the {count} stalls' excess (p50 {1e3 * float(np.median(durations)):.3g} ms, "
            f"largest {1e3 * float(durations[-1]):.3g} ms); each device is held that long, nothing runs",
        ),
        rows,
    )
