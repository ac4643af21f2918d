"""The S1–S4 steps of Alg. 2 and their effect on (F3)/(F4): printed (F19–F22) and recomputed.

`printed_delta` evaluates the supplement's formulas exactly as printed (with its symbols read
as in SPEC §1); `recomputed_delta` evaluates (F3)/(F4) before and after the step. Both use the
convention `Δ = after − before` (the supplement says "decreased by" but prints the signed
difference). Where they disagree the recomputed difference is the contract — it is what the
search uses — and docs/planner.md records each disagreement with a counter-example.

All deltas are per worker with N fixed: S1 in the search flips every worker at once and may
change N, which no per-worker formula can express (`search` simply runs both settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from planner.closed_form import (
    adaptation_rate,
    memory_bytes,
    stage_shares,
    stage_sizes,
    stage_times,
    versions_behind,
    worker_versions,
)
from planner.errors import ValidationError
from planner.plan import REMOVED, Plan
from planner.profile import ModelProfile
from planner.step_tables import s2_increment

STEP_KINDS = ("S1", "S2", "S3", "S4")


@dataclass(frozen=True)
class Step:
    kind: str  # S1 recomputation, S2 accumulation, S3 omission, S4 removal
    worker: int
    stage: int | None = None  # S2 and S3 only


def applicable(plan: Plan, step: Step) -> bool:
    """Whether Alg. 2 (or S1) may apply `step` to `plan`."""
    if not 0 <= step.worker < plan.num_workers or not plan.workers[step.worker].active:
        return False
    w, P = plan.workers[step.worker], plan.num_stages
    if step.kind == "S1":
        return not w.recompute
    if step.kind == "S4":
        return all(w.omission[j] != 0 for j in range(P - 1))
    j = step.stage
    if j is None or not 0 <= j < P or w.omission[j] != 0:
        return False
    delta = s2_increment(P, j, w.accumulation[j])
    return delta is not None if step.kind == "S2" else (delta is None and j < P - 1)


def apply_step(plan: Plan, step: Step) -> Plan:
    """The plan after the step; raises `ValidationError` when the step is not applicable."""
    if step.kind not in STEP_KINDS:
        raise ValidationError(f"unknown step {step.kind!r}; steps are {', '.join(STEP_KINDS)}")
    if not applicable(plan, step):
        raise ValidationError(f"step {step.kind} is not applicable to worker {step.worker}, stage {step.stage}")
    w, P = plan.workers[step.worker], plan.num_stages
    acc, omit = list(w.accumulation), list(w.omission)
    if step.kind == "S1":
        new = replace(w, recompute=True)
    elif step.kind == "S4":
        new = replace(w, offset=REMOVED)
    else:
        j = step.stage
        assert j is not None
        if step.kind == "S2":
            delta = s2_increment(P, j, acc[j])
            assert delta is not None
            acc[j] += delta
        else:
            acc[j], omit[j] = 1, P - 1 - j
        new = replace(w, accumulation=tuple(acc), omission=tuple(omit))
    workers = list(plan.workers)
    workers[step.worker] = new
    return replace(plan, workers=tuple(workers), predicted=None)


def recomputed_delta(profile: ModelProfile, plan: Plan, step: Step) -> tuple[float, int]:
    """`(R_after - R_before, M_after - M_before)` from (F3)/(F4), N fixed."""
    after = apply_step(plan, step)
    return adaptation_rate(profile, after) - adaptation_rate(profile, plan), memory_bytes(
        profile, after
    ) - memory_bytes(profile, plan)


# ------------------------------------------------------------------------------ as printed
def _suffix_lcms(omission: tuple[int, ...]) -> list[int]:
    out, lcm = [0] * len(omission), 1
    for i in range(len(omission) - 1, -1, -1):
        lcm = math.lcm(lcm, omission[i] + 1)
        out[i] = lcm
    return out


def _a(plan: Plan, tf: float, tb: float, recompute: bool, i: int, j: np.ndarray, lcm: int) -> np.ndarray:
    """`A_{i,j}` of (F3) (the supplement's A, B, C and E differ only in c^r and the LCM)."""
    P, cr = plan.num_stages, float(recompute)
    exponent = (P + j) * tf + (P - i + j) * tb + cr * (P - i + j) * tf
    return plan.value_per_datum * np.exp(-plan.decay_per_s * exponent) / (lcm * (tf + tb + cr * tf))


def _stage_bytes(profile: ModelProfile, plan: Plan, recompute: bool) -> np.ndarray:
    w, a, s = stage_sizes(profile, plan.partition)
    return w + a - (s if recompute else 0)


def printed_delta(profile: ModelProfile, plan: Plan, step: Step) -> tuple[float, int]:
    """(F19)–(F22) exactly as printed in the supplement, for an applicable step."""
    if not applicable(plan, step):
        raise ValidationError(f"step {step.kind} is not applicable to worker {step.worker}, stage {step.stage}")
    tf, tb = stage_times(profile, plan.partition)
    share = stage_shares(profile, plan.partition)
    w = plan.workers[step.worker]
    P, cr = plan.num_stages, w.recompute
    lcms = _suffix_lcms(w.omission)
    acc = w.accumulation
    if step.kind == "S1":  # (F19): B is A with c^r = 1, C is A with c^r = 0
        rate = sum(
            share[i] / acc[i] * float((_a(plan, tf, tb, True, i, np.arange(acc[i]), lcms[i])
                                       - _a(plan, tf, tb, False, i, np.arange(acc[i]), lcms[i])).sum())
            for i in range(P)
        )  # fmt: skip
        s = stage_sizes(profile, plan.partition)[2]
        return float(rate), -int(sum(v * int(si) for v, si in zip(worker_versions(P, w), s, strict=True)))
    if step.kind == "S4":  # (F22)
        rate = -sum(
            share[i] / acc[i] * float(_a(plan, tf, tb, cr, i, np.arange(acc[i]), lcms[i]).sum()) for i in range(P)
        )
        nbytes = _stage_bytes(profile, plan, cr)
        return float(rate), -int(sum(v * int(b) for v, b in zip(worker_versions(P, w), nbytes, strict=True)))
    j = step.stage
    assert j is not None
    nbytes = _stage_bytes(profile, plan, cr)
    if step.kind == "S2":  # (F20)
        ca = acc[j]
        delta = s2_increment(P, j, ca)
        assert delta is not None
        new_part = _a(plan, tf, tb, cr, j, np.arange(ca, ca + delta), lcms[j]).sum() / (ca + delta)
        old_part = delta * _a(plan, tf, tb, cr, j, np.arange(ca), lcms[j]).sum() / ((ca + delta) * ca)
        return float(share[j] * (new_part - old_part)), -int(nbytes[j])
    # (F21): E is A with the LCM widened by P - j, summed over i ∈ [0, P-1-j] as printed
    rate = 0.0
    for i in range(P - j):
        k = np.arange(acc[i])
        e = _a(plan, tf, tb, cr, i, k, math.lcm(lcms[i], P - j))
        rate += share[i] * float((e - _a(plan, tf, tb, cr, i, k, lcms[i])).sum()) / acc[i]
    removed = versions_behind(P - j - 1, acc[j])
    return float(rate), -removed * int(nbytes[j])
