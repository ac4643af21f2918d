"""Per-stage constants of a (partition, c^r): everything Alg. 2 needs to know about the model.

`stage_models` builds them for many partitions at once (`closed_form.stage_sums`: one
`reduceat` over every stage of every partition), with the same floating-point operations, in
the same order, as `closed_form`'s per-plan functions, so both give identical numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.closed_form import stage_sums
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
    rate0: float  # one worker's (F3) rate with no technique: `Σ coeff` (numpy's sum)

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
    sums = stage_sums(profile, partitions)
    first, counts, t_fwd, t_bwd, w, a, s = sums.first, sums.counts, sums.t_fwd, sums.t_bwd, sums.w, sums.a, sums.s
    tf, tb = np.maximum.reduceat(t_fwd, first), np.maximum.reduceat(t_bwd, first)
    total_w = float(profile.param_bytes.sum())
    shares = w / total_w if total_w > 0 else 1.0 / np.repeat(counts, counts)
    P = np.repeat(counts, counts)
    stage = np.arange(len(w)) - np.repeat(first, counts)
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
    tf_list, tb_list, bounds = tf.tolist(), tb.tolist(), np.append(first, len(w)).tolist()
    for n, part in enumerate(partitions):
        lo, hi = bounds[n], bounds[n + 1]
        for cr, cycle_list, coeff, nbytes, one, no_technique in models:
            c, stage_coeff = cycle_list[n], coeff[lo:hi]
            out.append(
                StageModel(
                    tuple(part), cr, tf_list[n], tb_list[n], c, decay_per_s * c, stage_coeff, nbytes[lo:hi],
                    one[n], no_technique[n], float(stage_coeff.sum())
                )
            )  # fmt: skip
    return out
