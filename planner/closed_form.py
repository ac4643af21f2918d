"""Ferret's closed forms (SPEC §3.3): adaptation rate (F3) and memory footprint (F4).

Pure functions of (profile, plan). They assume steady state, no device contention, no
communication cost and exactly periodic arrivals; the simulator drops those assumptions.

Workers with the same configuration contribute the same amount, so both forms are evaluated
once per distinct active worker configuration and multiplied by its count: a plan with
thousands of identical workers costs no more than one with a handful.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.plan import Plan, WorkerConfig
from planner.profile import ModelProfile

# A quotient within this relative distance of an integer counts as that integer, so that a
# cycle of exactly 3·td is 3 workers even when 0.003/0.001 rounds to 3.0000000000000004.
_CEIL_SLACK = 1e-12


@dataclass(frozen=True)
class StageSums:
    """Per-stage sums of every stage of one or more partitions, stages of all partitions in a
    row: partition n's stages are `first[n] : first[n] + counts[n]`."""

    first: np.ndarray
    counts: np.ndarray
    t_fwd: np.ndarray
    t_bwd: np.ndarray
    w: np.ndarray  # parameter bytes
    a: np.ndarray  # activation bytes
    s: np.ndarray  # recomputation saving: a stage keeps only its first layer's output


def stage_sums(profile: ModelProfile, partitions: Sequence[Sequence[int]]) -> StageSums:
    """Stage sums of many partitions in one `reduceat` per quantity (the same sums, bit for bit,
    as one `reduceat` per partition)."""
    starts = np.concatenate([np.asarray(p[:-1], dtype=np.intp) for p in partitions])
    ends = np.concatenate([np.asarray(p[1:], dtype=np.intp) for p in partitions])
    counts = np.array([len(p) - 1 for p in partitions], dtype=np.intp)
    # [start, end) pairs; the odd slots sum the (discarded) gaps between them.
    pairs = np.empty(2 * len(starts), dtype=np.intp)
    pairs[0::2], pairs[1::2] = starts, ends

    def sums(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.append(values, values[:1] * 0), pairs)[0::2]

    a = sums(profile.act_bytes)
    return StageSums(
        first=np.concatenate(([0], np.cumsum(counts)[:-1])),
        counts=counts,
        t_fwd=sums(profile.t_fwd),
        t_bwd=sums(profile.t_bwd),
        w=sums(profile.param_bytes),
        a=a,
        s=a - profile.act_bytes[starts],
    )


def stage_times(profile: ModelProfile, partition: Sequence[int]) -> tuple[float, float]:
    """`(tf, tb)`: the slowest stage's forward and backward time (SPEC §1)."""
    sums = stage_sums(profile, [partition])
    return float(sums.t_fwd.max()), float(sums.t_bwd.max())


def stage_sizes(profile: ModelProfile, partition: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-stage `(w, a, s)` in bytes: parameters, activations, and the recomputation saving.

    `s_i = Σ_{l=L_i+1}^{L_{i+1}-1} â_l`: with recomputation a stage keeps only its first
    layer's output (SPEC §3.3).
    """
    sums = stage_sums(profile, [partition])
    return sums.w, sums.a, sums.s


def stage_shares(profile: ModelProfile, partition: Sequence[int]) -> np.ndarray:
    """`w_i / Σ_j w_j`, the share of the model a stage's update refreshes (SPEC §2).

    A model without parameters would make every share 0/0; each stage then counts equally.
    """
    w = stage_sizes(profile, partition)[0].astype(np.float64)
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


def cycle_time(tf: float, tb: float, recompute: bool) -> float:
    """One worker's time per datum: `tf + tb + c^r·tf`."""
    return tf + tb + (tf if recompute else 0.0)


def ceil_ratio(numerator: float, denominator: float) -> int:
    """`⌈numerator / denominator⌉` for positive floats, at least 1, tolerant of float noise."""
    x = numerator / denominator
    return max(1, math.ceil(x * (1.0 - _CEIL_SLACK)))


def num_workers(profile: ModelProfile, partition: Sequence[int], arrival_interval_s: float, recompute: bool) -> int:
    """`N = ⌈(tf + tb + c^r·tf) / td⌉` (SPEC §3.1)."""
    tf, tb = stage_times(profile, partition)
    return ceil_ratio(cycle_time(tf, tb, recompute), arrival_interval_s)


def versions_behind(behind: int, accumulation: int) -> int:
    """`⌈K/c^a⌉`: the weight versions kept for the `K` stages behind a stage (SPEC §3.3)."""
    return -(-behind // accumulation)


def stage_versions(num_stages: int, stage: int, accumulation: int, omission: int) -> int:
    """`v_{n,i} = 1 + ⌈(P-i-1)/c^a_{n,i}⌉ - c^o_{n,i}` (SPEC §3.3), never below 1.

    The floor of 1 (a stage always holds its current weights) only matters for configurations
    that combine accumulation with omission, which the search never produces.
    """
    return max(1, 1 + versions_behind(num_stages - stage - 1, accumulation) - omission)


def worker_versions(num_stages: int, worker: WorkerConfig) -> list[int]:
    """`v_{n,i}` of one worker for every stage `i`."""
    return [stage_versions(num_stages, i, worker.accumulation[i], worker.omission[i]) for i in range(num_stages)]


def stored_versions(plan: Plan, worker: int, stage: int) -> int:
    """`v_{n,i}` of worker `worker`, stage `stage` of a plan."""
    w = plan.workers[worker]
    return stage_versions(plan.num_stages, stage, w.accumulation[stage], w.omission[stage])


def accumulation_mean(decay_cycle: float | np.ndarray, accumulation: np.ndarray | int) -> np.ndarray:
    """`(1/c^a)·Σ_{j<c^a} exp(-c·j·cycle)`: the mean discount while an accumulation group fills.

    `decay_cycle` is `c·cycle`, one value or one per accumulation. Closed form of the geometric
    sum; exactly 1 without decay.
    """
    ca = np.asarray(accumulation, dtype=np.float64)
    if np.ndim(decay_cycle) == 0:
        if decay_cycle == 0.0:
            return np.ones_like(ca)
        return np.expm1(-decay_cycle * ca) / (ca * math.expm1(-float(decay_cycle)))
    dc = np.asarray(decay_cycle, dtype=np.float64)
    out = np.ones_like(ca)
    on = dc != 0.0
    out[on] = np.expm1(-dc[on] * ca[on]) / (ca[on] * np.expm1(-dc[on]))
    return out


def suffix_lcm_reciprocal(omission: Sequence[int]) -> np.ndarray:
    """`1 / LCM({c^o_k + 1 : k ∈ [i, P-1]})` for every stage `i`, exact for any size.

    The LCM can exceed any float (lcm(1..64) ≈ 4e26), so it is kept as a Python int and only
    its reciprocal, through its logarithm, becomes a float.
    """
    out = np.empty(len(omission))
    lcm = 1
    for i in range(len(omission) - 1, -1, -1):
        lcm = math.lcm(lcm, omission[i] + 1)
        out[i] = 1.0 if lcm == 1 else math.exp(-math.log(lcm))
    return out


def worker_stage_rates(
    profile: ModelProfile, plan: Plan, worker: WorkerConfig, tf: float | None = None, tb: float | None = None
) -> np.ndarray:
    """One active worker's (F3) terms per stage `i`: `(w_i/Σw)·(1/c^a_i)·Σ_j A_{i,j}`."""
    if tf is None or tb is None:
        tf, tb = stage_times(profile, plan.partition)
    P = plan.num_stages
    stage = np.arange(P)
    extra_fwd = tf if worker.recompute else 0.0
    cycle = tf + tb + extra_fwd
    decay = plan.decay_per_s
    # Exponent of A_{i,0}: forward through P stages, backward down to i, plus recomputation.
    delay = P * tf + (P - stage) * (tb + extra_fwd)
    first = plan.value_per_datum * np.exp(-decay * delay) / cycle
    return (
        stage_shares(profile, plan.partition)
        * first
        * accumulation_mean(decay * cycle, np.asarray(worker.accumulation))
        * suffix_lcm_reciprocal(worker.omission)
    )


def worker_rate(
    profile: ModelProfile, plan: Plan, worker: WorkerConfig, tf: float | None = None, tb: float | None = None
) -> float:
    """One active worker's term of (F3): `Σ_i (w_i/Σw)·(1/c^a_i)·Σ_j A_{i,j}`."""
    return float(worker_stage_rates(profile, plan, worker, tf, tb).sum())


def worker_memory(profile: ModelProfile, plan: Plan, worker: WorkerConfig) -> int:
    """One active worker's term of (F4): `Σ_i v_i·(w_i + a_i - c^r·s_i)`."""
    w, a, s = stage_sizes(profile, plan.partition)
    stage_bytes = w + a - (s if worker.recompute else 0)
    versions = worker_versions(plan.num_stages, worker)
    return int(sum(int(v) * int(b) for v, b in zip(versions, stage_bytes, strict=True)))


def _distinct_active(plan: Plan) -> Counter[tuple[bool, tuple[int, ...], tuple[int, ...]]]:
    return Counter((w.recompute, w.accumulation, w.omission) for w in plan.workers if w.active)


def adaptation_rate(profile: ModelProfile, plan: Plan) -> float:
    """(F3): the plan's adaptation rate, value per second, from `plan.decay_per_s` and `plan.value_per_datum`."""
    tf, tb = stage_times(profile, plan.partition)
    total = 0.0
    for (recompute, acc, omit), count in _distinct_active(plan).items():
        total += count * worker_rate(profile, plan, WorkerConfig(0, recompute, acc, omit), tf, tb)
    return total


def memory_bytes(profile: ModelProfile, plan: Plan) -> int:
    """(F4): the plan's memory footprint in bytes (weight versions plus stored activations)."""
    total = 0
    for (recompute, acc, omit), count in _distinct_active(plan).items():
        total += count * worker_memory(profile, plan, WorkerConfig(0, recompute, acc, omit))
    return total


def arrival_limited_rate(profile: ModelProfile, plan: Plan) -> float:
    """(F3) with each worker's delivery capped by its arrivals: `1/max(cycle, N·td)` per worker.

    (F3) credits a worker with one datum per cycle; it receives one every `N·td` (N counts
    removed workers too: their share of the stream is lost). Not the contract's R — a
    diagnostic for comparing with what arrives (docs/planner.md §1).
    """
    tf, tb = stage_times(profile, plan.partition)
    period = plan.num_workers * plan.arrival_interval_s
    total = 0.0
    for (recompute, acc, omit), count in _distinct_active(plan).items():
        cycle = cycle_time(tf, tb, recompute)
        rate = worker_rate(profile, plan, WorkerConfig(0, recompute, acc, omit), tf, tb)
        total += count * rate * min(1.0, cycle / period)
    return total
