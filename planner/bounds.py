"""Upper bounds on what Alg. 2 can reach for a (partition, c^r), used to skip its chain.

Every bound holds for every configuration the search can produce, so skipping a candidate
whose bound cannot beat the best rate found changes nothing in the result.

**The worker envelope** (`WorkerEnvelope`, all candidates at once). Relax one worker's
configuration stage by stage: stage i walks its S2 ladder and then S3, each move saving
bytes and costing rate, and the coupling through other stages' omission LCMs is dropped
(stage i with one version rates at most `c_i/(P-i)`; with `1 + m` versions `c_i·g(c^a_m)`).
Letting the moves be taken in any order and in fractions gives a fractional knapsack whose
optimum `ĥ(m)` — the best rate within m bytes — is concave, non-decreasing and at least the
rate of every real configuration within m bytes (it is the tightest Lagrangian bound of the
relaxation). With k active workers sharing a budget M, Jensen gives `Σ R ≤ k·ĥ(M/k)`, so the
bound is `max_k k·ĥ(M/k)` over `1 ≤ k ≤ min(N, ⌊M/M_min⌋)`, a concave function of k.

A chain being built bounds itself too (`ChainBuilder.later_bound`); the search uses both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from planner.closed_form import accumulation_mean
from planner.step_tables import s2_ladder
from planner.worker_chain import StageModel

# Bounds can be tight (no decay: S2 loses nothing) while the search's own sums round to either
# side; they are widened well past rounding before they are used to skip a candidate.
BOUND_SLACK = 1e-9


@lru_cache(maxsize=4096)
def _stage_moves(behind: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One stage's moves (K = `behind` stages behind it): along its S2 ladder, rung t to t+1,
    then (K ≥ 1) from the last rung to one version by S3: `(c^a before, c^a after, versions
    saved, is S3)`."""
    acc, m = s2_ladder(behind)
    s3 = m[-1] >= 1
    before = np.array(acc if s3 else acc[:-1], dtype=np.intp)
    after = np.array(acc[1:] + ((1,) if s3 else ()), dtype=np.intp)
    saved = np.array([m[t] - m[t + 1] for t in range(len(acc) - 1)] + ([m[-1]] if s3 else []), dtype=np.int64)
    return before, after, saved, np.arange(len(before)) == len(acc) - 1


_Moves = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_MOVES: list[_Moves] = [
    (
        np.zeros(0, dtype=np.intp),
        np.zeros(0, dtype=np.intp),
        np.zeros(0, dtype=np.intp),
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=bool),
    )
]


def _moves(num_stages: int) -> _Moves:
    """Every stage's moves for P stages: `(stage, c^a before, c^a after, versions saved, is S3)`."""
    while len(_MOVES) <= num_stages:
        # Stages 1..P-1 of P stages are stages 0..P-2 of P-1 stages: only stage 0 is new.
        P, rest = len(_MOVES), _MOVES[-1]
        first = _stage_moves(P - 1)
        stage = np.concatenate((np.zeros(len(first[0]), dtype=np.intp), rest[0] + 1))
        _MOVES.append((stage, *(np.concatenate((a, b)) for a, b in zip(first, rest[1:], strict=True))))  # type: ignore[arg-type]
    return _MOVES[num_stages]


@dataclass(frozen=True)
class WorkerEnvelope:
    """`ĥ` of every candidate, as its costly moves sorted by rate lost per byte saved.

    Rates are kept relative to each candidate's no-technique rate `R_0` so that one running
    sum over all candidates loses no precision to candidates of a larger scale.
    """

    rate0: np.ndarray  # (C,) R_0
    memory0: np.ndarray  # (C,) int64, one worker without technique
    min_bytes: np.ndarray  # (C,) int64, one version per stage
    num_workers: np.ndarray  # (C,) int64
    free_gain: np.ndarray  # (C,) rate/R_0 gained by the moves that cost nothing
    free_saved: np.ndarray  # (C,) int64, bytes those moves save
    key: np.ndarray  # (S,) float, candidate · span + bytes saved after the move (sorted)
    span: float  # key offset between candidates, above any candidate's saving
    saved_before: np.ndarray  # (S+1,) bytes the candidate's moves before move s save
    cost_before: np.ndarray  # (S+1,) rate/R_0 lost by all moves before move s (all candidates)
    slope: np.ndarray  # (S+1,) rate/R_0 lost per byte within move s (0 past the end)
    first: np.ndarray  # (C,) index of each candidate's first move in the sorted arrays

    @classmethod
    def of(cls, models: Sequence[StageModel], num_workers: Sequence[int]) -> WorkerEnvelope:
        C = len(models)
        P = np.array([m.num_stages for m in models], dtype=np.intp)
        top = int(P.max(initial=1))
        # The moves of P stages are those of `top` stages from stage top-P on: one gather.
        top_stage, top_before, top_after, top_versions, top_s3 = _moves(top)
        start = np.searchsorted(top_stage, top - P)
        counts = len(top_stage) - start
        cand = np.repeat(np.arange(C), counts)
        idx = np.arange(int(counts.sum())) + np.repeat(start - (np.cumsum(counts) - counts), counts)
        local = top_stage[idx] - np.repeat(top - P, counts)
        stage = local + np.repeat(np.cumsum(P) - P, counts)
        before, after, versions, s3 = top_before[idx], top_after[idx], top_versions[idx], top_s3[idx]
        coeff = np.concatenate([m.coeff for m in models])
        nbytes = np.concatenate([m.stage_bytes for m in models]).astype(np.int64)
        # g of every accumulation 1..top-1 once per candidate (a ladder's c^a ≤ K < top), looked up.
        decay = np.array([m.decay_cycle for m in models])
        acc = np.arange(1, top + 1, dtype=np.float64)
        g = accumulation_mean(np.repeat(decay, top), np.tile(acc, C))
        stage_p = np.repeat(P, counts)
        rate0 = np.array([m.rate0 for m in models])
        scale = np.where(rate0 > 0, rate0, 1.0)
        row = cand * top - 1  # g of c^a = a at row·top + a - 1
        rho_before = np.take(g, row + before)
        rho_after = np.where(s3, 1.0 / (stage_p - local), np.take(g, row + after))
        lost = coeff[stage] * (rho_before - rho_after) / scale[cand]
        saved = versions * nbytes[stage]
        free = lost <= 0
        costly = ~free & (saved > 0)
        free_gain = -np.bincount(cand[free], lost[free], minlength=C)
        free_saved = np.bincount(cand[free], saved[free], minlength=C).astype(np.int64)
        cand, lost, saved = cand[costly], lost[costly], saved[costly]
        # Sorted by candidate, then by rate lost per byte: a sort by the ratio, then a stable
        # sort by candidate (a radix sort on 16-bit keys: 5× faster than one lexsort).
        order = np.argsort(lost / saved)
        order = order[np.argsort(cand[order].astype(np.int16 if C < 1 << 15 else np.int64), kind="stable")]
        cand, lost, saved = cand[order], lost[order], saved[order]
        memory0 = np.array([m.no_technique_bytes for m in models], dtype=np.int64)
        min_bytes = np.array([m.min_worker_bytes for m in models], dtype=np.int64)
        first = np.searchsorted(cand, np.arange(C))
        # Each candidate's running saving restarts at 0 (integers: the subtraction is exact).
        running = np.concatenate(([0], np.cumsum(saved)))
        cum_saved = running[1:] - np.repeat(running[first], np.diff(np.append(first, len(cand))))
        span = float(int((memory0 - min_bytes).max(initial=0)) + 1)
        return cls(
            rate0=rate0,
            memory0=memory0,
            min_bytes=min_bytes,
            num_workers=np.asarray(num_workers, dtype=np.int64),
            free_gain=free_gain,
            free_saved=free_saved,
            key=cand * span + cum_saved,
            span=span,
            saved_before=np.concatenate(([0.0], cum_saved)),
            cost_before=np.concatenate(([0.0], np.cumsum(lost))),
            slope=np.append(lost / saved, 0.0),
            first=first,
        )

    def per_worker(self, which: np.ndarray, memory: np.ndarray) -> np.ndarray:
        """`ĥ(memory)` of candidates `which` (-inf below one version per stage)."""
        need = self.memory0[which] - self.free_saved[which] - memory  # bytes the costly moves must save
        j = np.searchsorted(self.key, which * self.span + need, side="left")  # first move reaching `need`
        saved_before = np.where(j > self.first[which], self.saved_before[j], 0.0)
        lost = self.cost_before[j] - self.cost_before[self.first[which]] + (need - saved_before) * self.slope[j]
        value = self.rate0[which] * (1.0 + self.free_gain[which] - np.where(need > 0, lost, 0.0))
        return np.where(memory >= self.min_bytes[which], value, -np.inf)

    def bounds(self, which: np.ndarray, budget: int) -> np.ndarray:
        """`max_k k·ĥ(budget/k)` for candidates `which` (their every plan within budget rates less)."""
        kmax = np.minimum(self.num_workers[which], budget // np.maximum(self.min_bytes[which], 1))
        lo, hi = np.ones_like(kmax), np.maximum(kmax, 1)

        def total(k: np.ndarray) -> np.ndarray:
            return k * self.per_worker(which, budget / k)

        while np.any(lo < hi):  # k·ĥ(M/k) is concave in k: bisect on the sign of its step
            mid = (lo + hi) // 2
            up = (lo < hi) & (total(mid + 1) > total(mid))
            lo, hi = np.where(up, mid + 1, lo), np.where(up | (lo >= hi), hi, mid)
        return np.where(kmax >= 1, total(lo), -np.inf)
