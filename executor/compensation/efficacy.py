"""Compensation efficacy (SPEC §5): how much of a stale gradient's error a compensator removes.

For a sampled stale backward the stage also computes `g_latest`, the same datum's gradient at
its current weights (same stage input, same gradient from above), and compares it with the
stale gradient `g_stash` and the compensated one `g_comp`:

    efficacy = 1 − ‖g_comp − g_latest‖ / ‖g_stash − g_latest‖

1 is a perfect compensator, 0 one with no effect (`none`), < 0 a harmful one. The log also keeps
how large the stale error is (`‖g_stash − g_latest‖ / ‖g_latest‖`) and how large the correction
(`‖g_comp − g_stash‖ / ‖g_stash‖`), which together say whether a compensator is the right size.
"""

from __future__ import annotations

import statistics
from typing import Any, NamedTuple

import torch

# Every pipeline run measures the efficacy on every EFFICACY_EVERY-th stale backward of a stage:
# the datum's gradient at the current weights costs one more forward and backward, which the
# executors leave out of the op times and the ledger.
EFFICACY_EVERY = 50


class EfficacySample(NamedTuple):
    """One measured stale backward: how much of its stale-vs-latest error the compensator removed."""

    sample: int  # the datum (arrival index)
    staleness: int
    efficacy: float  # 1 − ‖g_comp − g_latest‖ / ‖g_stash − g_latest‖
    stale_error: float  # ‖g_stash − g_latest‖ / ‖g_latest‖
    correction: float  # ‖g_comp − g_stash‖ / ‖g_stash‖


def efficacy_sample(
    stale: torch.Tensor, compensated: torch.Tensor, latest: torch.Tensor, staleness: int, sample: int = -1
) -> EfficacySample | None:
    """One measurement, or None when the stale gradient already equals the latest one (the
    ratio is undefined: there was no error to remove)."""
    error = float(torch.linalg.vector_norm(stale - latest))
    if error == 0.0:
        return None
    remaining = float(torch.linalg.vector_norm(compensated - latest))
    latest_norm = float(torch.linalg.vector_norm(latest))
    stale_norm = float(torch.linalg.vector_norm(stale))
    change = float(torch.linalg.vector_norm(compensated - stale))
    return EfficacySample(
        sample,
        staleness,
        1.0 - remaining / error,
        error / latest_norm if latest_norm > 0 else float("inf"),
        change / stale_norm if stale_norm > 0 else 0.0,
    )


class EfficacyLog:
    """The efficacy samples of one stage: every `every`-th stale backward (the first included)."""

    def __init__(self, every: int) -> None:
        if every < 0:
            raise ValueError(f"efficacy sampling interval must be ≥ 0 (0 = off), got {every}")
        self.every = every
        self.stale_backwards = 0
        self.samples: list[EfficacySample] = []
        self.seconds = 0.0  # wall time spent measuring, which the executors leave out of the op times
        self.cpu_seconds = 0.0  # the same in the measuring thread's CPU time

    def due(self) -> bool:
        """Count one stale backward; True when it is to be measured."""
        if not self.every:
            return False
        self.stale_backwards += 1
        return (self.stale_backwards - 1) % self.every == 0

    def record(self, sample: EfficacySample | None) -> None:
        if sample is not None:
            self.samples.append(sample)

    def summary(self) -> dict[str, Any]:
        return summarize(self.samples)


def summarize(samples: list[EfficacySample]) -> dict[str, Any]:
    """Median and mean over the samples (the median resists the few backwards whose stale error
    is near zero and whose ratio is therefore noisy)."""
    if not samples:
        return {"samples": 0}
    eff = [x.efficacy for x in samples]
    return {
        "samples": len(samples),
        "efficacy_median": statistics.median(eff),
        "efficacy_mean": statistics.fmean(eff),
        "stale_error_median": statistics.median(x.stale_error for x in samples),
        "correction_median": statistics.median(x.correction for x in samples),
        "mean_staleness": statistics.fmean(x.staleness for x in samples),
    }


def compensation_efficacy(logs: list[EfficacyLog], stream_length: int) -> dict[str, Any]:
    """What a pipeline run reports: every stage's samples pooled, per stage, and per half of
    the stream (before and after the middle: an abrupt shift there shows in the second)."""
    pooled = [x for log in logs for x in log.samples]
    half = stream_length // 2
    return {
        **summarize(pooled),
        "every": max((log.every for log in logs), default=0),
        "per_stage": [log.summary() for log in logs],
        "halves": [
            summarize([x for x in pooled if x.sample < half]),
            summarize([x for x in pooled if x.sample >= half]),
        ],
    }
