"""The single walker's state while its chain is built: what each next S2 or S3 step would cost.

Per stage it holds the rung of its S2 ladder, whether it is omitted (S3), its mean discount
`g`, `1/LCM` and (F3) term `coeff·g/LCM`. LCMs are prime-exponent vectors, so `1/LCM` stays
exact in log space beyond the range of any integer type, and `share_loss[i, k] =
1 - LCM_i / lcm(LCM_i, P-k)` is the fraction of stage i's term that S3 at stage k ≥ i removes;
it needs only `met[i, k] = gcd(LCM_i, P-k)`, a small integer looked up in tables.

Everything is numpy over all stages: `s2_moves` lists every S2 step still ahead with its ratio
(fixed until the next S3 step, which alone changes LCMs), `s3_losses` the rate each S3 step
would lose for a whole matrix of (F3) terms at once, `s3_stays_below` whether any S3 step can
come within a run of S2 steps, and `apply_s2_run` / `apply_s3` take steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from planner.closed_form import accumulation_mean
from planner.stage_model import StageModel
from planner.step_tables import divisor_tables, factor_table, s2_ladder


def ratios(saved: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Memory saved per rate lost; +inf when saved at no loss (or a gain), 0 when nothing is saved."""
    out = np.where((saved > 0) | (lost < 0), math.inf, 0.0)
    with np.errstate(over="ignore"):  # a loss within a few ulps of 0: the ratio is +inf
        np.divide(saved, lost, out=out, where=lost > 0)
    return out


@dataclass(frozen=True)
class _Layout:
    """Everything about a chain that depends on P alone (shared by all chains of that P)."""

    behind: np.ndarray  # K = P-1-j per stage
    rungs: np.ndarray  # length of each stage's S2 ladder
    acc: np.ndarray  # (P, width) c^a per rung, padded with the last rung
    left: np.ndarray  # (P, width) ⌈K/c^a⌉ per rung, padded likewise
    last: tuple[np.ndarray, np.ndarray]  # index of each stage's last rung into (P, width)
    plog: np.ndarray  # logarithm of every prime ≤ P
    prime_powers: tuple[tuple[tuple[int, int], ...], ...]  # (prime index, exponent) of each m ≤ P
    gcd_rows: np.ndarray  # (P+1, P): gcd(a, m) of every a ≤ P with every column's m
    width: int  # row length of the flattened tables below
    lcm_flat: np.ndarray  # lcm(x, y) at x·width + y
    share_flat: np.ndarray  # share_table[m, d] at m·width + d
    col_base: np.ndarray  # (P,) m·width of each column's m
    upper: np.ndarray  # (P, P): 1.0 where i < k
    share_loss: np.ndarray  # (P, P): share_loss with every LCM 1


@lru_cache(maxsize=256)
def _layout(P: int) -> _Layout:
    behind = P - 1 - np.arange(P)
    ladders = [s2_ladder(int(K)) for K in behind]
    rungs = np.array([len(acc) for acc, _ in ladders], dtype=np.intp)
    width = int(rungs.max(initial=1))
    pidx, kexp, _, plog = factor_table(max(P, 2))
    gcd_table, lcm_table, share_table = divisor_tables(max(P, 2))
    col_m = P - np.arange(P)
    return _Layout(
        behind=behind,
        rungs=rungs,
        acc=np.array([acc + acc[-1:] * (width - len(acc)) for acc, _ in ladders], dtype=np.int64),
        left=np.array([m + m[-1:] * (width - len(m)) for _, m in ladders], dtype=np.int64),
        last=(np.arange(P), rungs - 1),
        plog=plog,
        prime_powers=tuple(
            tuple((int(i), int(k)) for i, k in zip(pidx[m], kexp[m], strict=True) if k) for m in range(len(pidx))
        ),
        gcd_rows=gcd_table[:, col_m],
        width=len(lcm_table),
        lcm_flat=lcm_table.ravel(),
        share_flat=share_table.ravel(),
        col_base=col_m * len(lcm_table),
        upper=np.triu(np.ones((P, P)), 1),
        share_loss=np.repeat(share_table[col_m, 1][None], P, axis=0),
    )


class ChainState:
    """Mutable state of one worker under Alg. 2; see the module docstring."""

    def __init__(self, model: StageModel) -> None:
        P = self.P = model.num_stages
        layout = _layout(P)
        self.behind, self.rungs, self.acc, self.left = layout.behind, layout.rungs, layout.acc, layout.left
        self.plog, self.prime_powers = layout.plog, layout.prime_powers
        self.gcd_rows, self.width, self.col_base = layout.gcd_rows, layout.width, layout.col_base
        self.lcm_flat, self.share_flat = layout.lcm_flat, layout.share_flat
        self.upper = layout.upper
        self.coeff = model.coeff
        self.nbytes = model.stage_bytes.astype(np.int64)
        self.nbytes_float = self.nbytes.astype(np.float64)
        # S2 step t of stage j moves it from rung t to t+1; g_table: the mean discount per rung.
        self.g_table = accumulation_mean(model.decay_cycle, self.acc.reshape(-1)).reshape(self.acc.shape)
        self.rung = np.zeros(P, dtype=np.intp)
        self.omitted = np.zeros(P, dtype=bool)
        self.g = np.ones(P)
        self.inv_lcm = np.ones(P)
        self.terms = self.coeff.copy()
        self.exponents = np.zeros((P, len(self.plog)), dtype=np.int64)  # of each stage's LCM
        # Column k stands for m = P-k, the factor S3 at stage k puts into the LCMs of stages
        # i ≤ k; `met[i, k] = gcd(LCM_i, m)` is all of LCM_i that the share loss needs.
        self.met = np.ones((P, P), dtype=np.int64)
        self.share_loss = layout.share_loss.copy()
        self.share_loss_upper = self.share_loss * self.upper  # share_loss restricted to i < k
        self.last_g_minus_1 = self.g_table[layout.last] - 1.0
        self.own = self.coeff * self.inv_lcm * (self.last_g_minus_1 + np.diagonal(self.share_loss))
        self.closed = self.behind == 0  # stages where S3 can no longer apply (omitted or last)

    # ---------------------------------------------------------------- what steps are left
    def ready(self) -> np.ndarray:
        """Stages whose S2 ladder is exhausted and S3 is applicable."""
        return ~self.omitted & (self.behind > 0) & (self.rung == self.rungs - 1)

    def s2_moves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every S2 step still ahead: `(stage, rung before, ratio)`, grouped by stage in ladder order."""
        todo = np.where(self.omitted, 0, self.rungs - 1 - self.rung)
        if not todo.any():
            empty = np.zeros(0, dtype=np.intp)
            return empty, empty, np.zeros(0)
        stage = np.repeat(np.arange(self.P), todo)
        t = np.arange(len(stage)) - np.repeat(np.cumsum(todo) - todo, todo) + self.rung[stage]
        saved = ((self.left[stage, t] - self.left[stage, t + 1]) * self.nbytes[stage]).astype(np.float64)
        lost = self.coeff[stage] * self.inv_lcm[stage] * (self.g_table[stage, t] - self.g_table[stage, t + 1])
        return stage, t, ratios(saved, lost)

    def s3_losses(self, terms: np.ndarray) -> np.ndarray:
        """Rate lost by S3 at every stage k for each row of (F3) terms: the LCMs of stages
        i ≤ k gain the factor P-k and stage k's accumulation resets to 1 (only meaningful
        for stages that are ready)."""
        return terms @ self.share_loss_upper + self.own

    # ---------------------------------------------------------------- steps
    def term(self, stage: np.ndarray, rung: np.ndarray) -> np.ndarray:
        """The (F3) terms of `stage` at `rung` (same operations as every other update)."""
        return self.coeff[stage] * self.g_table[stage, rung] * self.inv_lcm[stage]

    def s2_rows(self, stage: np.ndarray, reached: np.ndarray) -> np.ndarray:
        """The (F3) terms before and after each of a run of S2 steps (row q: after q steps)."""
        rows = np.repeat(self.terms[None], len(stage) + 1, axis=0)
        latest = np.zeros(rows.shape, dtype=np.intp)  # forward-fill each stage's latest value
        latest[np.arange(1, len(stage) + 1), stage] = np.arange(1, len(stage) + 1)
        np.maximum.accumulate(latest, axis=0, out=latest)
        return np.where(latest > 0, np.concatenate(([0.0], self.term(stage, reached)))[latest], rows)

    def s3_stays_below(self, stage: np.ndarray, reached: np.ndarray, ratio: float) -> bool:
        """Whether no S3 step reaches `ratio` at any point of a run of S2 steps.

        S2 steps only lower (F3) terms, so S3 losses only fall and S3 ratios only rise along
        the run, while more stages become ready: the S3 ratios after the whole run bound
        every earlier point of it.
        """
        rung = self.rung.copy()
        np.maximum.at(rung, stage, reached)
        touched = np.flatnonzero(rung != self.rung)
        terms = self.terms.copy()
        terms[touched] = self.term(touched, rung[touched])
        ready = ~self.closed & (rung == self.rungs - 1)
        if not ready.any():
            return True
        r3 = ratios(self.nbytes_float, self.s3_losses(terms))
        return bool(r3[ready].max() < ratio)

    def apply_s2_run(self, stage: np.ndarray, reached: np.ndarray) -> None:
        """Take a run of S2 steps (`reached`: the rung each step reaches)."""
        before = self.rung.copy()
        np.maximum.at(self.rung, stage, reached)
        touched = np.flatnonzero(self.rung != before)
        self.g[touched] = self.g_table[touched, self.rung[touched]]
        self.terms[touched] = self.term(touched, self.rung[touched])

    def apply_s3(self, j: int) -> int:
        """Omit stage j (S3); return the bytes saved.

        The LCMs of stages i ≤ j gain the factor m = P-j; only those that m does not divide
        yet (`met[i, j] < m`) change, and only their rows are recomputed.
        """
        saved = int(self.left[j, self.rung[j]]) * int(self.nbytes[j])  # ⌈K/c^a⌉ = 1 version
        self.omitted[j] = self.closed[j] = True
        self.g[j] = 1.0
        m = self.P - j
        rows = np.flatnonzero(self.met[: j + 1, j] != m)
        if len(rows):
            for col, k in self.prime_powers[m]:
                self.exponents[rows, col] = np.maximum(self.exponents[rows, col], k)
            met = self.met[rows] = np.take(self.lcm_flat, self.met[rows] * self.width + self.gcd_rows[m])
            self.inv_lcm[rows] = np.exp(-(self.exponents[rows] @ self.plog))
            share = self.share_loss[rows] = np.take(self.share_flat, self.col_base + met)
            self.share_loss_upper[rows] = share * self.upper[rows]
        touched = rows if len(rows) and rows[-1] == j else np.append(rows, j)  # j's g is now 1
        inv_lcm = self.inv_lcm[touched]
        self.terms[touched] = self.coeff[touched] * self.g[touched] * inv_lcm
        diagonal = self.share_loss[touched, touched]
        self.own[touched] = self.coeff[touched] * inv_lcm * (self.last_g_minus_1[touched] + diagonal)
        return saved

    def memory(self) -> int:
        """The worker's (F4) term: one version per omitted stage, `1 + ⌈K/c^a⌉` otherwise."""
        left = self.left[np.arange(self.P), self.rung]
        return int(np.where(self.omitted, 1, 1 + left) @ self.nbytes)

    def rate(self) -> float:
        return math.fsum(self.terms.tolist())
