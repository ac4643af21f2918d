"""One worker's greedy trajectory under Alg. 2 (SPEC §4.1), built once per (partition, c^r).

Why a single worker is enough: (F3) and (F4) are sums of per-worker terms, so the gain and
cost of a step on worker `n` depend on worker `n`'s configuration alone. All workers start in
the same configuration, so each one, whenever the global greedy picks it, takes the same best
step from the same state: every worker walks the *same* chain of states s_0 → s_1 → … → s_K
(s_K = removed by S4). The global greedy only decides how the N walkers interleave, which
`planner.search` derives in closed form from the chain's ratios. The chain depends on neither
`td`, `N` nor the budget, so a budget sweep reuses it.

Candidate steps are evaluated as exact differences of the worker's (F3)/(F4) terms, touching
only the terms a step changes (the recomputed difference of SPEC §3.3, not the printed deltas).
LCMs are tracked as prime-exponent vectors so that `1/LCM` stays exact in log space beyond
the range of any integer type.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from planner.plan import REMOVED, WorkerConfig
from planner.profile import ModelProfile
from tests.planner.reference_search.closed_form import (
    accumulation_mean,
    cycle_time,
    stage_shares,
    stage_sizes,
    stage_times,
)
from tests.planner.reference_search.step_tables import factor_table, s2_ladder

S2, S3, S4 = 2, 3, 4
STEP_NAMES = {S2: "S2", S3: "S3", S4: "S4"}


@dataclass(frozen=True)
class StageModel:
    """Per-stage constants of one (partition, c^r): all Alg. 2 needs to know about the model.

    `coeff[i]` is `(w_i/Σw)·A_{i,0}·LCM` (the stage's (F3) term with no technique applied);
    `stage_bytes[i]` is `w_i + a_i - c^r·s_i` (one stored version's bytes).
    """

    partition: tuple[int, ...]
    recompute: bool
    tf: float
    tb: float
    cycle: float
    decay_cycle: float
    coeff: np.ndarray
    stage_bytes: np.ndarray

    @property
    def num_stages(self) -> int:
        return len(self.partition) - 1

    @cached_property
    def min_worker_bytes(self) -> int:
        """One worker with every version-saving step applied: a single version per stage."""
        return int(sum(int(b) for b in self.stage_bytes))


def stage_model(
    profile: ModelProfile, partition: tuple[int, ...], recompute: bool, decay_per_s: float, value_per_datum: float
) -> StageModel:
    tf, tb = stage_times(profile, partition)
    cycle = cycle_time(tf, tb, recompute)
    P = len(partition) - 1
    stage = np.arange(P)
    extra_fwd = tf if recompute else 0.0
    delay = P * tf + (P - stage) * (tb + extra_fwd)
    coeff = stage_shares(profile, partition) * value_per_datum * np.exp(-decay_per_s * delay) / cycle
    w, a, s = stage_sizes(profile, partition)
    stage_bytes = (w + a - (s if recompute else 0)).astype(np.int64)
    return StageModel(partition, recompute, tf, tb, cycle, decay_per_s * cycle, coeff, stage_bytes)


@dataclass(frozen=True)
class WorkerChain:
    """States s_0..s_K of one worker; step k leads from s_k to s_{k+1} with ratio `ratios[k]`."""

    model: StageModel
    rates: np.ndarray  # (K+1,) the worker's (F3) term in each state
    memory: np.ndarray  # (K+1,) int64, its (F4) term
    ratios: np.ndarray  # (K,) memory saved per rate lost (+inf: saved at no loss)
    kinds: np.ndarray  # (K,) S2, S3 or S4
    stages: np.ndarray  # (K,) stage of the step (-1 for S4)
    accumulations: np.ndarray  # (K,) c^a of the stage after the step

    @property
    def length(self) -> int:
        return len(self.ratios)

    def config(self, state: int, offset: int) -> WorkerConfig:
        """The worker configuration of state `state` (replaying the first `state` steps)."""
        P = self.model.num_stages
        if state >= self.length:
            return WorkerConfig(REMOVED, self.model.recompute, (1,) * P, tuple(P - 1 - j for j in range(P)))
        acc = [1] * P
        omit = [0] * P
        for k in range(state):
            j = int(self.stages[k])
            if self.kinds[k] == S2:
                acc[j] = int(self.accumulations[k])
            else:
                acc[j], omit[j] = 1, P - 1 - j
        return WorkerConfig(offset, self.model.recompute, tuple(acc), tuple(omit))

    def step_counts(self, state: int) -> dict[str, int]:
        kinds = self.kinds[:state]
        return {name: int(np.count_nonzero(kinds == kind)) for kind, name in STEP_NAMES.items()}


def _ratio(saved: float, lost: float) -> float:
    if lost > 0:
        return saved / lost
    return math.inf if (saved > 0 or lost < 0) else 0.0


class _ChainBuilder:
    """Mutable state of the single walker while its chain is built.

    Per stage it keeps a head: the ratio of the stage's next S2 step or, once its S2 ladder
    is exhausted ("ready"), of its S3 step. An S2 step changes one stage's rate term, which
    moves the S3 loss of every ready stage above it by that change times a fixed factor, so
    the per-step work is a short loop over scalars (kept as Python floats: at this size the
    interpreter beats numpy's per-call overhead). An S3 step changes the LCMs of the stages
    at or below it; it happens at most P-1 times per chain and recomputes with numpy.
    """

    def __init__(self, model: StageModel) -> None:
        self.model = model
        P = self.P = model.num_stages
        self.behind = (P - 1 - np.arange(P)).tolist()
        self.coeff: list[float] = model.coeff.tolist()
        self.nbytes = [int(b) for b in model.stage_bytes]
        self.pidx, self.kexp, self.logp, self.plog = factor_table(max(P, 2))
        # S2 ladders: the accumulation values S2 walks through at each stage, with their
        # version counts ⌈K/c^a⌉ and mean discounts; S2 step t moves from rung t to t+1.
        self.ladder_acc: list[list[int]] = []
        self.ladder_m: list[list[int]] = []
        self.ladder_g: list[list[float]] = []
        for K in self.behind:
            acc, m = s2_ladder(K)
            self.ladder_acc.append(list(acc))
            self.ladder_m.append(list(m))
            self.ladder_g.append(accumulation_mean(model.decay_cycle, np.array(acc)).tolist())
        self.rung = [0] * P
        self.omitted = [False] * P
        self.exponents = np.zeros((P, len(self.plog)), dtype=np.int64)
        self.inv_lcm = [1.0] * P
        self.g = [1.0] * P
        self.terms = list(self.coeff)
        # numpy mirrors of the three lists above, for the vectorised S3 recomputations
        self.inv_lcm_np = np.ones(P)
        self.g_np = np.ones(P)
        self.terms_np = model.coeff.copy()
        # Per column j: the prime factors of P-j, the factor S3 at stage j puts into the LCMs.
        col_m = P - np.arange(P)
        self.col_pidx, self.col_kexp, self.col_logp = self.pidx[col_m], self.kexp[col_m], self.logp[col_m]
        self.strict_upper = np.triu(np.ones((P, P), dtype=bool), 1)
        self.share_loss = np.zeros((P, P))  # D[i, j] = 1 - LCM_i / lcm(LCM_i, P-j)
        self.share_loss_upper = np.zeros((P, P))  # D restricted to i < j
        self._refresh_share_loss(P - 1)
        self.heads = [-math.inf] * P
        self.ready = [False] * P  # S2 ladder exhausted, S3 applicable
        self.ready_stages: list[int] = []  # the same, as a sorted list
        self.open_stages = [j for j in range(P) if self.behind[j] > 0]  # with a step left, sorted
        self.lost3 = [0.0] * P
        self._refresh_heads(list(range(P)))

    # ---------------------------------------------------------------- candidate values
    def _refresh_share_loss(self, last_row: int) -> None:
        rows = slice(0, last_row + 1)
        have = self.exponents[rows][:, self.col_pidx]  # (rows, P, width)
        extra = (np.maximum(self.col_kexp[None] - have, 0) * self.col_logp[None]).sum(axis=2)
        self.share_loss[rows] = -np.expm1(-extra)
        self.share_loss_upper[rows] = np.where(self.strict_upper[rows], self.share_loss[rows], 0.0)

    def _s3_losses(self, stages: list[int]) -> list[float]:
        """Rate lost by S3 at each of `stages`: the LCMs of stages i ≤ j gain the factor P-j
        and stage j's accumulation resets to 1."""
        cols = self.share_loss_upper[:, stages]
        own = (
            self.model.coeff[stages]
            * self.inv_lcm_np[stages]
            * (self.g_np[stages] - 1.0 + self.share_loss[stages, stages])
        )
        losses: list[float] = (self.terms_np @ cols + own).tolist()
        return losses

    def _refresh_heads(self, stages: list[int]) -> None:
        """Recompute the heads of `stages` from scratch."""
        ready = []
        for j in stages:
            self._set_ready(j, False)
            if self.omitted[j] or self.behind[j] == 0:
                self.heads[j] = -math.inf
                continue
            t = self.rung[j]
            if t + 1 < len(self.ladder_acc[j]):
                saved = float((self.ladder_m[j][t] - self.ladder_m[j][t + 1]) * self.nbytes[j])
                lost = self.coeff[j] * self.inv_lcm[j] * (self.ladder_g[j][t] - self.ladder_g[j][t + 1])
                self.heads[j] = _ratio(saved, lost)
            else:
                self._set_ready(j, True)
                ready.append(j)
        if ready:
            for j, lost3 in zip(ready, self._s3_losses(ready), strict=True):
                self.lost3[j] = lost3
                self.heads[j] = _ratio(float(self.nbytes[j]), lost3)

    def _set_ready(self, j: int, ready: bool) -> None:
        if self.ready[j] != ready:
            self.ready[j] = ready
            if ready:
                bisect.insort(self.ready_stages, j)
            else:
                self.ready_stages.remove(j)

    def best(self) -> tuple[int, float]:
        """The stage of the best step and its ratio (-inf: no stage step left); ties to the
        lowest stage."""
        top = max(self.heads)
        return self.heads.index(top), top

    # ---------------------------------------------------------------- steps
    def apply_s2(self, j: int) -> tuple[int, int]:
        t = self.rung[j] = self.rung[j] + 1
        saved = (self.ladder_m[j][t - 1] - self.ladder_m[j][t]) * self.nbytes[j]
        old = self.terms[j]
        self.g[j] = self.g_np[j] = self.ladder_g[j][t]
        self.terms[j] = self.terms_np[j] = self.coeff[j] * self.g[j] * self.inv_lcm[j]
        change = self.terms[j] - old
        if change:
            above = self.ready_stages[bisect.bisect_right(self.ready_stages, j) :]
            if above:
                row = self.share_loss_upper[j, above].tolist()
                for k, d in zip(above, row, strict=True):
                    self.lost3[k] += change * d
                    self.heads[k] = _ratio(float(self.nbytes[k]), self.lost3[k])
        self._refresh_heads([j])
        return saved, self.ladder_acc[j][t]

    def apply_s3(self, j: int) -> int:
        P = self.P
        saved = self.ladder_m[j][self.rung[j]] * self.nbytes[j]  # ⌈K/c^a⌉ = 1 version
        self.omitted[j] = True
        self.open_stages.remove(j)
        self.g[j] = self.g_np[j] = 1.0
        m = P - j
        for t in range(self.kexp.shape[1]):
            if self.kexp[m, t]:
                col = self.pidx[m, t]
                np.maximum(self.exponents[: j + 1, col], self.kexp[m, t], out=self.exponents[: j + 1, col])
        low = slice(0, j + 1)
        self.inv_lcm_np[low] = np.exp(-(self.exponents[low] @ self.plog))
        self.terms_np[low] = self.model.coeff[low] * self.g_np[low] * self.inv_lcm_np[low]
        self.inv_lcm[low] = self.inv_lcm_np[low].tolist()
        self.terms[low] = self.terms_np[low].tolist()
        self._refresh_share_loss(j)
        # LCMs changed at stages ≤ j (their S2 heads move) and the S3 losses above depend on them.
        below = self.open_stages[: bisect.bisect_right(self.open_stages, j)]
        above = self.ready_stages[bisect.bisect_right(self.ready_stages, j) :]
        self.heads[j] = -math.inf
        self._set_ready(j, False)
        self._refresh_heads([*below, *above])
        return saved

    def memory(self) -> int:
        versions = [1 if self.omitted[j] else 1 + self.ladder_m[j][self.rung[j]] for j in range(self.P)]
        return sum(v * b for v, b in zip(versions, self.nbytes, strict=True))

    def rate(self) -> float:
        return math.fsum(self.terms)


def build_chain(model: StageModel) -> WorkerChain:
    """Walk one worker from no technique to removal, always taking its best-ratio step.

    Ties go to the lowest stage (S2 and S3 never compete at one stage; S4 is only applicable
    once no stage step is left).
    """
    b = _ChainBuilder(model)
    rate = b.rate()
    mem = b.memory()
    rates, memory, ratios, kinds, stages, accs = [rate], [mem], [], [], [], []
    while True:
        j, ratio = b.best() if b.P else (0, -math.inf)
        if ratio == -math.inf:
            ratios.append(_ratio(float(mem), rate))
            kinds.append(S4)
            stages.append(-1)
            accs.append(1)
            rates.append(0.0)
            memory.append(0)
            break
        ratios.append(ratio)
        stages.append(j)
        if b.ready[j]:
            saved = b.apply_s3(j)
            kinds.append(S3)
            accs.append(1)
        else:
            saved, acc = b.apply_s2(j)
            kinds.append(S2)
            accs.append(acc)
        mem -= saved
        rate = b.rate()
        rates.append(rate)
        memory.append(mem)
    return WorkerChain(
        model=model,
        rates=np.array(rates),
        memory=np.array(memory, dtype=np.int64),
        ratios=np.array(ratios),
        kinds=np.array(kinds, dtype=np.int8),
        stages=np.array(stages, dtype=np.int64),
        accumulations=np.array(accs, dtype=np.int64),
    )
