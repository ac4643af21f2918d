"""The metrics of SPEC §9, as pure functions of a `RunResult`'s arrays.

Accuracies are percentages. Definitions (decisions marked):
- online accuracy `oacc(t) = 100·(1/t)·Σ_{i≤t} 1[ŷ_i = y_i]` over every arrival, trained or not;
- test accuracy at a checkpoint: correct / total over the test rows of the groups (classes,
  or (domain, class) cells) the stream had shown by then; A_AUC is its mean over checkpoints,
  A_last the last one (aL-SAR);
- **Decision — forgetting:** per group, the best accuracy at any earlier checkpoint where the
  group was seen minus the final accuracy, averaged over the groups seen before the final
  checkpoint (per class rather than per task, so blurry and iid streams have one too); `None`
  with fewer than two checkpoints;
- `agm_B(A) = (acc_A − acc_B) − ln(M_A / M_B)` (F17/F18), **Decision:** accuracies in
  percentage points, memory the measured peak bytes;
- adaptation rate (F1) with value 1 per datum, delay `r` = time from arrival to the update that
  included the datum, **Decision:** horizon `T = n × mean inter-arrival gap` (the stream's
  length including the last datum's slot).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from executor.ocl.result import RunResult


def online_accuracy_curve(correct: np.ndarray) -> np.ndarray:
    correct = np.asarray(correct, dtype=np.float64)
    return 100.0 * np.cumsum(correct) / np.arange(1, len(correct) + 1)


def online_accuracy(correct: np.ndarray) -> float:
    return 100.0 * float(np.mean(correct)) if len(correct) else math.nan


def seen_accuracy_curve(group_correct: np.ndarray, group_total: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Per checkpoint, accuracy over the test rows of the groups seen by then (NaN if none)."""
    totals = (seen * group_total[None, :]).sum(axis=1)
    hits = (seen * group_correct).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 100.0 * hits / np.maximum(totals, 1), np.nan)


def a_auc(test_curve: np.ndarray) -> float:
    valid = test_curve[np.isfinite(test_curve)]
    return float(valid.mean()) if len(valid) else math.nan


def a_last(test_curve: np.ndarray) -> float:
    return float(test_curve[-1]) if len(test_curve) else math.nan


def forgetting(group_correct: np.ndarray, group_total: np.ndarray, seen: np.ndarray) -> float | None:
    if group_correct.shape[0] < 2:
        return None
    has_tests = group_total > 0
    accuracy = 100.0 * group_correct / np.where(has_tests, group_total, 1)[None, :]
    earlier = np.where(seen[:-1], accuracy[:-1], -np.inf)
    best = earlier.max(axis=0)
    eligible = has_tests & np.isfinite(best)
    if not eligible.any():
        return None
    return float((best[eligible] - accuracy[-1, eligible]).mean())


def accuracy_gain_per_memory(acc_a: float, acc_b: float, memory_a: float, memory_b: float) -> float:
    """(F17)/(F18): accuracy gained over baseline B, less the log of the memory ratio."""
    if memory_a <= 0 or memory_b <= 0:
        raise ValueError(f"memory must be positive to compare (got {memory_a} and {memory_b} bytes)")
    return (acc_a - acc_b) - math.log(memory_a / memory_b)


def adaptation_rate(arrival_s: np.ndarray, trained_at_s: np.ndarray, decay_per_s: float, value: float = 1.0) -> float:
    """(F1) `R = (1/T)·Σ exp(−c·r)·V`; never-trained data contribute 0. NaN for a zero-length stream."""
    n = len(arrival_s)
    span = float(arrival_s[-1] - arrival_s[0]) if n else 0.0
    if n < 2 or span <= 0:
        return math.nan
    horizon = span * n / (n - 1)
    delay = trained_at_s - arrival_s
    retained = np.where(np.isfinite(delay), np.exp(-decay_per_s * np.where(np.isfinite(delay), delay, 0.0)), 0.0)
    return float(value * retained.sum() / horizon)


def summarize(result: RunResult, *, decay_per_s: float = 1.0) -> dict[str, Any]:
    """The run's headline numbers (the `summary.json` fields of DESIGN.md plus SPEC §9)."""
    test_curve = seen_accuracy_curve(result.group_correct, result.group_total, result.seen)
    trained = result.trained
    delays = (result.trained_at_s - result.arrival_s)[trained]
    return {
        "framework": result.framework,
        "algorithm": result.algorithm,
        "samples": result.samples,
        "online_accuracy": online_accuracy(result.correct),
        "test_accuracy": a_last(test_curve),
        "a_auc": a_auc(test_curve),
        "a_last": a_last(test_curve),
        "forgetting": forgetting(result.group_correct, result.group_total, result.seen),
        "trained": int(trained.sum()),
        "skipped": int((~trained).sum()),
        "steps": result.steps,
        "train_flops": result.train_flops,
        "train_flops_per_sample": result.train_flops / result.samples if result.samples else None,
        "busy_s": result.busy_s,
        "mean_delay_s": float(delays.mean()) if len(delays) else None,
        "adaptation_rate": adaptation_rate(result.arrival_s, result.trained_at_s, decay_per_s),
        "decay_per_s": decay_per_s,
        "measured_peak_memory_bytes": result.peak_memory_bytes,
        "stored_peak_bytes": result.stored_peak_bytes,
        "peak_memory_by_category": dict(result.peak_memory_by_category),
        "cuda_peak_memory_bytes": result.cuda_peak_memory_bytes,
        "wall_s": result.wall_s,
        **result.details,
    }


def compare_to_baseline(summary: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, float]:
    """`oagm` and `tagm` of a run against a baseline run's summary (Ferret uses 1-Skip)."""
    memory_a, memory_b = summary["measured_peak_memory_bytes"], baseline["measured_peak_memory_bytes"]
    return {
        "oagm": accuracy_gain_per_memory(summary["online_accuracy"], baseline["online_accuracy"], memory_a, memory_b),
        "tagm": accuracy_gain_per_memory(summary["test_accuracy"], baseline["test_accuracy"], memory_a, memory_b),
    }
