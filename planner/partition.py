"""Alg. 3's outer level (SPEC §4.2): stage-time caps and the greedy minimum-P partition per cap.

A cap `t^c` bounds a stage's `Σ(t̂f + t̂b)`. The greedy adds consecutive layers to the current
stage while its time stays within the cap and otherwise opens a new stage; a layer that alone
exceeds the cap gets a stage of its own (the paper's loop does the same). This is the fewest
stages any contiguous partition can have under that rule. Many caps yield the same partition,
so `candidate_partitions` builds every cap's partition at once (vectorised over caps) and
keeps each distinct one, in the order of the smallest cap that produced it.
"""

from __future__ import annotations

import numpy as np

from planner.profile import ModelProfile

# Sums of the same layers computed along different paths differ in the last bits; a stage
# "fits" when it exceeds the cap by no more than this fraction of the whole model's time.
_FIT_SLACK = 1e-12


def layer_times(profile: ModelProfile) -> np.ndarray:
    return profile.t_fwd + profile.t_bwd


def _prefix(profile: ModelProfile) -> np.ndarray:
    return np.concatenate(([0.0], np.cumsum(layer_times(profile))))


def stage_time_caps(profile: ModelProfile) -> np.ndarray:
    """Every distinct `Σ_{l=a}^{b} (t̂f_l + t̂b_l)` over contiguous ranges, ascending."""
    prefix = _prefix(profile)
    start, stop = np.triu_indices(len(prefix), 1)
    return _distinct(np.sort(prefix[stop] - prefix[start]))


def _slack(prefix: np.ndarray) -> float:
    return _FIT_SLACK * float(prefix[-1])


def greedy_partition(profile: ModelProfile, cap: float) -> tuple[int, ...]:
    """The greedy partition for one cap: `[0, L_1, ..., L̂]`."""
    return _rows_to_partitions(_boundary_table(_prefix(profile), np.array([float(cap)])))[0]


def candidate_partitions(profile: ModelProfile) -> list[tuple[int, ...]]:
    """The distinct greedy partitions over all caps, ordered by the smallest cap producing each."""
    table = _boundary_table(_prefix(profile), stage_time_caps(profile))
    # Every boundary of the greedy is non-decreasing in the cap (each reaches as far as the cap
    # allows from the one before), so the caps giving one partition are consecutive: each
    # distinct row starts a run of equal rows, in the order of the caps.
    changed = (table[1:] != table[:-1]).any(axis=1)
    return _rows_to_partitions(table[np.r_[True, changed]])


# np.unique is avoided: it imports numpy.ma, which costs more than planning a small model.
def _first_of_runs(values: np.ndarray) -> np.ndarray:
    """For sorted `values`, where each run of equal values starts."""
    return np.flatnonzero(np.r_[True, values[1:] != values[:-1]])


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array."""
    return values[_first_of_runs(values)]


def _boundary_table(prefix: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Every cap's greedy boundaries at once: row r is `[0, L_1, ..., L̂, L̂, ...]` for cap r.

    `caps` ascending: boundaries grow with the cap, so the rows still going are a prefix."""
    num_layers = len(prefix) - 1
    limit = caps + _slack(prefix)
    pos = np.zeros(len(caps), dtype=np.intp)
    table = np.full((len(caps), num_layers + 1), num_layers, dtype=np.intp)
    table[:, 0] = 0
    going, col = len(caps), 1
    while going:
        # The furthest boundary e with prefix[e] - prefix[pos] ≤ cap, at least one layer on.
        now = pos[:going]
        reach = np.searchsorted(prefix, prefix[now] + limit[:going], side="right") - 1
        now[:] = table[:going, col] = np.minimum(np.maximum(reach, now + 1), num_layers)
        going = int(np.searchsorted(now, num_layers))
        col += 1
    return table[:, :col]


def _rows_to_partitions(table: np.ndarray) -> list[tuple[int, ...]]:
    ends = (np.argmax(table == table[0, -1], axis=1) + 1).tolist()  # each row's first L̂, included
    return [tuple(row[:end]) for row, end in zip(table.tolist(), ends, strict=True)]


def num_caps(profile: ModelProfile) -> int:
    return len(stage_time_caps(profile))
