"""The single walker's state while its chain is built: what each next S2 or S3 step would cost.

Per stage it holds the rung of its S2 ladder; the omission side — whether a stage is omitted
(S3), its mean discount `g`, `1/LCM`, (F3) term `coeff·g/LCM` and how its LCM meets every
stage's factor — lives in a one-row `planner.s3_batch.S3Batch` (`self.s3`), the same code
that builds the tails of many chains at once; this class reads it through views.

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
from planner.s3_batch import S3Batch, ratios
from planner.stage_model import StageModel
from planner.step_tables import s2_ladder

__all__ = ["ChainState", "ratios"]


@dataclass(frozen=True)
class _Layout:
    """Everything about a chain that depends on P alone (shared by all chains of that P)."""

    behind: np.ndarray  # K = P-1-j per stage
    rungs: np.ndarray  # length of each stage's S2 ladder
    acc: np.ndarray  # (P, width) c^a per rung, padded with the last rung
    left: np.ndarray  # (P, width) ⌈K/c^a⌉ per rung, padded likewise
    last: tuple[np.ndarray, np.ndarray]  # index of each stage's last rung into (P, width)
    moves: int  # S2 steps of a fresh chain: every ladder's length less one


@lru_cache(maxsize=256)
def _layout(P: int) -> _Layout:
    behind = P - 1 - np.arange(P)
    ladders = [s2_ladder(int(K)) for K in behind]
    rungs = np.array([len(acc) for acc, _ in ladders], dtype=np.intp)
    width = int(rungs.max(initial=1))
    return _Layout(
        behind=behind,
        rungs=rungs,
        acc=np.array([acc + acc[-1:] * (width - len(acc)) for acc, _ in ladders], dtype=np.int64),
        left=np.array([m + m[-1:] * (width - len(m)) for _, m in ladders], dtype=np.int64),
        last=(np.arange(P), rungs - 1),
        moves=int((rungs - 1).sum()),
    )


class ChainState:
    """Mutable state of one worker under Alg. 2; see the module docstring."""

    def __init__(self, model: StageModel) -> None:
        P = self.P = model.num_stages
        layout = _layout(P)
        self.behind, self.rungs, self.acc, self.left = layout.behind, layout.rungs, layout.acc, layout.left
        self.moves = layout.moves
        self.nbytes = model.stage_bytes.astype(np.int64)
        # S2 step t of stage j moves it from rung t to t+1; g_table: the mean discount per rung.
        self.g_table = accumulation_mean(model.decay_cycle, self.acc.reshape(-1)).reshape(self.acc.shape)
        self.rung = np.zeros(P, dtype=np.intp)
        # Stages where S3 can no longer apply: the last one (and, later, the omitted ones).
        s3 = self.s3 = S3Batch.for_chain(model.coeff, self.nbytes, self.g_table[layout.last] - 1.0, self.behind == 0)
        s3.saved[0] = self.left[:, 0] * self.nbytes
        self.coeff, self.nbytes_float, self.g, self.inv_lcm = s3.coeff[0], s3.nbytes[0], s3.g[0], s3.inv_lcm[0]
        self.terms, self.closed, self.omitted = s3.terms[0], s3.closed[0], s3.omitted[0]

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
        return self.s3.losses(terms)

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
        self.s3.saved[0, touched] = self.left[touched, self.rung[touched]] * self.nbytes[touched]

    def apply_s3(self, j: int) -> int:
        """Omit stage j (S3); return the bytes saved (⌈K/c^a⌉ = 1 version)."""
        saved = int(self.s3.saved[0, j])
        self.s3.omit(np.zeros(1, dtype=np.intp), np.array([j]))
        return saved

    def rate(self) -> float:
        return math.fsum(self.terms.tolist())
