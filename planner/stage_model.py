"""Per-stage constants of a (partition, c^r): everything Alg. 2 needs to know about the model.

`stage_models` builds them for many partitions at once — one `reduceat` over every stage of
every partition instead of one per partition — with the same floating-point operations, in
the same order, as `closed_form`'s per-plan functions, so both give identical numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.profile import ModelProfile


@dataclass(frozen=True)
class StageModel:
    """`coeff[i]` is `(w_i/Σw)·A_{i,0}·LCM` (the stage's (F3) term with no technique applied);
    `stage_bytes[i]` is `w_i + a_i - c^r·s_i` (one stored version's bytes)."""

    partition: tuple[int, ...]
    recompute: bool
    tf: float
    tb: float
    cycle: float
    decay_cycle: float
    coeff: np.ndarray
    stage_bytes: np.ndarray
    min_worker_bytes: int  # one worker with every version-saving step: one version per stage
    no_technique_bytes: int  # one worker with no technique: stage i keeps P - i versions

    @property
    def num_stages(self) -> int:
        return len(self.partition) - 1


def stage_model(
    profile: ModelProfile, partition: tuple[int, ...], recompute: bool, decay_per_s: float, value_per_datum: float
) -> StageModel:
    """The constants of one (partition, c^r)."""
    return stage_models(profile, [partition], (recompute,), decay_per_s, value_per_datum)[0]


def stage_models(
    profile: ModelProfile,
    partitions: Sequence[tuple[int, ...]],
    recompute: Sequence[bool],
    decay_per_s: float,
    value_per_datum: float,
) -> list[StageModel]:
    """The constants of every (partition, c^r), partition-major (SPEC §3.3 and §1)."""
    if not partitions:
        return []
    starts = np.concatenate([np.asarray(p[:-1], dtype=np.intp) for p in partitions])
    ends = np.concatenate([np.asarray(p[1:], dtype=np.intp) for p in partitions])
    counts = np.array([len(p) - 1 for p in partitions], dtype=np.intp)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    # One reduceat over [start, end) pairs: the odd slots are the (discarded) gaps between them.
    pairs = np.empty(2 * len(starts), dtype=np.intp)
    pairs[0::2], pairs[1::2] = starts, ends

    def stage_sums(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.append(values, values[:1] * 0), pairs)[0::2]

    t_fwd, t_bwd = stage_sums(profile.t_fwd), stage_sums(profile.t_bwd)
    w, a = stage_sums(profile.param_bytes), stage_sums(profile.act_bytes)
    s = a - profile.act_bytes[starts]  # recomputation keeps only a stage's first input
    tf, tb = np.maximum.reduceat(t_fwd, first), np.maximum.reduceat(t_bwd, first)
    total_w = float(profile.param_bytes.sum())
    shares = w / total_w if total_w > 0 else 1.0 / np.repeat(counts, counts)
    P = np.repeat(counts, counts)
    stage = np.arange(len(starts)) - np.repeat(first, counts)
    models = []
    for cr in recompute:
        extra_fwd = tf if cr else np.zeros_like(tf)
        cycle = tf + tb + extra_fwd
        delay = np.repeat(P[first] * tf, counts) + (P - stage) * np.repeat(tb + extra_fwd, counts)
        coeff = shares * value_per_datum * np.exp(-decay_per_s * delay) / np.repeat(cycle, counts)
        nbytes = (w + a - (s if cr else 0)).astype(np.int64)
        one = np.add.reduceat(nbytes, first).tolist()  # integer sums: exact in any order
        no_technique = np.add.reduceat((P - stage) * nbytes, first).tolist()
        models.append((cr, cycle.tolist(), coeff, nbytes, one, no_technique))
    out = []
    tf_list, tb_list, bounds = tf.tolist(), tb.tolist(), np.append(first, len(starts)).tolist()
    for n, part in enumerate(partitions):
        lo, hi = bounds[n], bounds[n + 1]
        for cr, cycle_list, coeff, nbytes, one, no_technique in models:
            c = cycle_list[n]
            out.append(
                StageModel(
                    tuple(part), cr, tf_list[n], tb_list[n], c, decay_per_s * c, coeff[lo:hi], nbytes[lo:hi],
                    one[n], no_technique[n]
                )
            )  # fmt: skip
    return out
