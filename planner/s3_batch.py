"""The omission (S3) side of worker chains, for one chain or many at once.

Per stage of each chain (one row per chain, rows padded to one stage count) it holds `1/LCM`,
the mean discount `g`, the (F3) term `coeff·g/LCM`, and, per pair of stages (i, k),
`met[i, k] = gcd(LCM_i, P-k)` with the share `share[i, k] = 1 - met/(P-k)` of stage i's
term that S3 at stage k ≥ i removes. That is all an S3 step needs:

* its loss at stage k, `Σ_{i<k} terms_i·share[i, k] + coeff_k/LCM_k·(g_k - 1 + share[k, k])`
  (`losses`, a sum taken in stage order so that padding and batch size never change a bit);
* its update (`omit`): `LCM_i` of the stages i ≤ k gains the factor `m/met[i, k]` (m = P-k), so
  `1/LCM_i` is divided by that integer, and `met`, `share` follow by table lookups
  (`step_tables.flat_divisor_tables`), only for the rows that change.

`S3Batch.tails` builds the *tails* of many chains at once — the S3 steps left once no S2
step is (most chains: all their S3 steps) — paying numpy's per-call cost once per step for
all of them instead of once per chain, and drops rows whose bound shows they cannot win.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import numpy as np

from planner.step_tables import flat_divisor_tables

kernel: ModuleType | None
try:  # the compiled lock-step (setup.py builds it; planner.native never loads a stale build)
    from planner import _s3_kernel as kernel
except ImportError:  # not built, stale, or FERRET_PURE_PYTHON=1: the numpy path below runs
    kernel = None

_TINY = 1e-290  # a loss above this divides any byte count without overflow
ASK_EVERY = 8  # S3 steps `S3Batch.tails` takes between two questions to its stopping rule
FSUM_ROWS = 48  # below this many rows `exact_sums` calls math.fsum per row


def ratios(saved: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Memory saved per rate lost; +inf when saved at no loss (or a gain), 0 when nothing is saved."""
    out = np.where((saved > 0) | (lost < 0), math.inf, 0.0)
    with np.errstate(over="ignore"):  # a loss within a few ulps of 0: the ratio is +inf
        np.divide(saved, lost, out=out, where=lost > 0)
    return out


def ratio(saved: float, lost: float) -> float:
    """`ratios` of one pair, in Python floats (the same IEEE division; an overflow gives +inf)."""
    if lost > 0:
        return saved / lost
    return math.inf if saved > 0 or lost < 0 else 0.0


def exact_sums(terms: np.ndarray) -> np.ndarray:
    """`math.fsum` of every row of non-negative `terms`, bit for bit (the rates of a chain are
    exactly rounded sums, so that candidates whose rates are equal in exact arithmetic — no
    decay — compare as they always did).

    A pairwise sum in double-double arithmetic (error below 1e-30 of the sum) decides the
    rounding of every row whose low part is not within that error of half an ulp; the few
    others go to `math.fsum`. Its fixed cost (~60 numpy calls) pays from about 50 rows on;
    fewer go to `math.fsum` directly.
    """
    if len(terms) < FSUM_ROWS:
        return np.array([math.fsum(row) for row in terms.tolist()])
    width = 1 << max(0, (terms.shape[1] - 1).bit_length())
    hi = np.zeros((terms.shape[0], width))
    hi[:, : terms.shape[1]] = terms
    lo = np.zeros_like(hi)
    while hi.shape[1] > 1:
        a, b = hi[:, 0::2], hi[:, 1::2]
        s = a + b
        v = s - a
        err = (a - (s - v)) + (b - v)  # TwoSum: a + b = s + err exactly
        low = lo[:, 0::2] + lo[:, 1::2] + err
        hi = s + low
        lo = low - (hi - s)  # Fast2Sum: s + low = hi + lo exactly (|s| ≥ |low|)
    hi, lo = hi[:, 0], lo[:, 0]
    bound = hi * 1e-30 + 1e-300
    below = hi - np.nextafter(hi, 0.0)  # the gap under hi (half the one above at a power of two)
    sure = np.where(lo >= 0, lo + bound < np.spacing(hi) / 2, bound - lo < below / 2)
    for row in np.flatnonzero(~sure).tolist():
        hi[row] = math.fsum(terms[row].tolist())
    return hi


@dataclass
class Tail:
    """What `S3Batch.tails` built for one row: the S3 steps taken (stage, ratio, then the
    worker's rate and memory after each) and whether the row ran out of S3 steps."""

    stages: np.ndarray
    ratios: np.ndarray
    rates: np.ndarray
    memory: np.ndarray
    finished: bool


@dataclass
class _Records:
    """What `S3Batch.tails` records per row and step, and each row's memory as it goes."""

    stage: np.ndarray
    ratio: np.ndarray
    rate: np.ndarray
    row_memory: np.ndarray  # (rows, steps): memory after each step
    memory: np.ndarray  # (rows,): memory now


class S3Batch:
    """S3 state of `rows` chains, padded to `width` stages (see the module docstring).

    Padding stages are closed, have no term and meet every factor in 1, so they never change
    and never contribute. `ChainState` keeps a batch of one row and reads it through `[0]` views.
    """

    def __init__(self, num_stages: Sequence[int], width: int) -> None:
        C, W = len(num_stages), width
        self.table_width, self.gcd_flat, self.lcm_flat, self.share_flat = flat_divisor_tables(max(W, 2))
        self.P = np.asarray(num_stages, dtype=np.int64)
        k = np.arange(W)
        self.colm = np.where(k[None] < self.P[:, None], self.P[:, None] - k[None], 1)  # m = P-k (padding: 1)
        self.stage = k
        self.upper = np.triu(np.ones((W, W)), 1)  # 1.0 where i < k
        self.coeff = np.zeros((C, W))
        self.nbytes = np.zeros((C, W))  # bytes of one version, as floats (ratios)
        self.saved = np.zeros((C, W), dtype=np.int64)  # bytes S3 at the stage saves now
        self.g = np.ones((C, W))
        self.inv_lcm = np.ones((C, W))
        self.terms = np.zeros((C, W))
        self.last_g_minus_1 = np.zeros((C, W))
        self.own = np.zeros((C, W))
        self.closed = np.ones((C, W), dtype=bool)  # S3 no longer applicable (omitted, last stage, padding)
        self.omitted = np.zeros((C, W), dtype=bool)
        self.share_diag = np.zeros((C, W))  # share[k, k]
        self.met = np.ones((C, W, W), dtype=np.int64)
        self.share_upper = np.zeros((C, W, W))  # share[i, k] where i < k, else 0
        self._shared = False  # the pair arrays belong to `_fresh` (copied before a change)

    _ROW_FIELDS = (
        "coeff", "nbytes", "saved", "g", "inv_lcm", "terms", "last_g_minus_1", "own", "closed", "omitted", "share_diag"
    )  # fmt: skip
    _PAIR_FIELDS = ("met", "share_upper")

    @classmethod
    def stack(cls, parts: Sequence[S3Batch]) -> S3Batch:
        """One batch of the first row of each part (each padded to the widest)."""
        P = [int(p.P[0]) for p in parts]
        out = cls(P, max(P))
        for c, (part, p) in enumerate(zip(parts, P, strict=True)):
            for name in cls._ROW_FIELDS:
                getattr(out, name)[c, :p] = getattr(part, name)[0, :p]
            for name in cls._PAIR_FIELDS:
                getattr(out, name)[c, :p, :p] = getattr(part, name)[0, :p, :p]
        return out

    def store(self, row: int, into: S3Batch) -> None:
        """Copy row `row` into the one-row batch `into` (of that row's own width)."""
        into._own_pairs()
        p = int(self.P[row])
        for name in self._ROW_FIELDS:
            getattr(into, name)[0] = getattr(self, name)[row, :p]
        for name in self._PAIR_FIELDS:
            getattr(into, name)[0] = getattr(self, name)[row, :p, :p]

    @classmethod
    def for_chain(
        cls, coeff: np.ndarray, nbytes: np.ndarray, last_g_minus_1: np.ndarray, closed: np.ndarray
    ) -> S3Batch:
        """A one-row batch for a fresh chain (every LCM 1), `nbytes` per version saved by S3.

        Its pair arrays are shared with every fresh chain of that stage count until its first
        S3 step (`omit` copies them then): most chains take none before their tail."""
        out = cls.__new__(cls)
        out.__dict__.update(_fresh(len(coeff)).__dict__)  # a shallow copy (copy.copy costs 5× more)
        shape = (1, len(coeff))
        out.coeff, out.nbytes = coeff[None].astype(np.float64), nbytes[None].astype(np.float64)
        out.saved = nbytes[None].astype(np.int64)
        out.g, out.inv_lcm, out.terms = np.ones(shape), np.ones(shape), out.coeff.copy()
        out.last_g_minus_1, out.closed = last_g_minus_1[None].copy(), closed[None].copy()
        out.omitted, out.share_diag = np.zeros(shape, dtype=bool), out.share_diag.copy()
        out.own = out.coeff * out.inv_lcm * (out.last_g_minus_1 + out.share_diag)
        out._shared = True
        return out

    def _own_pairs(self) -> None:
        """Copy the pair arrays shared with `_fresh` before they are written."""
        if self._shared:
            self.met, self.share_upper, self._shared = self.met.copy(), self.share_upper.copy(), False

    # ---------------------------------------------------------------- one S3 step
    def losses(self, terms: np.ndarray, row: int = 0) -> np.ndarray:
        """Rate lost by S3 at every stage of chain `row` for each row of (F3) terms."""
        return np.einsum("...i,ik->...k", terms, self.share_upper[row]) + self.own[row]

    def omit(self, rows: np.ndarray, stages: np.ndarray, lo: int = 0, hi: int | None = None) -> None:
        """Omit `stages[r]` of chain `rows[r]` (S3): the LCMs of its stages i ≤ k gain the factor
        m = P-k. `met` and `share` are kept for the columns `lo:hi` only (every column still
        open; the others are never read again)."""
        self._own_pairs()
        hi = self.met.shape[2] if hi is None else hi
        m = self.P[rows] - stages
        self.omitted[rows, stages] = self.closed[rows, stages] = True
        self.g[rows, stages] = 1.0
        below = int(stages.max()) + 1
        column = self.met[rows, :below, stages]  # gcd(LCM_i, m) of every stage i ≤ k
        r, i = np.nonzero((column != m[:, None]) & (self.stage[None, :below] <= stages[:, None]))
        c = rows[r]
        if len(c):
            self.inv_lcm[c, i] /= m[r] // column[r, i]  # lcm(L, m) = L·m/gcd(L, m), an exact integer factor
            # Lookups shared by every row of a chain (one m, one set of columns), then per row.
            w = self.table_width
            colm = self.colm[rows, lo:hi]
            with_m = np.take(self.gcd_flat, m[:, None] * w + colm)
            met = self.met[c, i, lo:hi] = np.take(self.lcm_flat, self.met[c, i, lo:hi] * w + with_m[r])
            share = np.take(self.share_flat, (colm * w)[r] + met)
            self.share_upper[c, i, lo:hi] = share
            inside = np.flatnonzero(i >= lo)  # rows below the window need no mask (every k there is above i)
            self.share_upper[c[inside], i[inside], lo:hi] *= self.upper[i[inside], lo:hi]
            inside = inside[i[inside] < hi]  # a stage below lo is closed: its own loss is never read
            self.share_diag[c[inside], i[inside]] = share[inside, i[inside] - lo]
        c, i = np.concatenate((c, rows)), np.concatenate((i, stages))  # and each k itself: its g is now 1
        inv_lcm = self.inv_lcm[c, i]
        self.terms[c, i] = self.coeff[c, i] * self.g[c, i] * inv_lcm
        self.own[c, i] = self.coeff[c, i] * inv_lcm * (self.last_g_minus_1[c, i] + self.share_diag[c, i])

    # ---------------------------------------------------------------- tails of many chains
    def tails(
        self,
        memory: np.ndarray,
        max_steps: int | None = None,
        beaten: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
        safe_memory: int | None = None,
    ) -> list[Tail]:
        """Take every row's greedy S3 steps, all rows in lock-step, until each row has none left
        (or `max_steps` are taken). `memory` is each row's worker (F4) term now; rows must come
        in non-increasing order of their S3 steps left (the rows still going are then a prefix).

        `beaten(rows, memory, upper)` says which rows may stop: `upper` is each row's
        `Σ coeff_i/LCM_i`, above the rate of every state still to come (`g ≤ 1`, LCMs only grow).
        It is asked only about rows whose memory is above `safe_memory` (when given; the others
        build on): memory only falls, so once every row still going is within it, the steps
        left run with no more questions (`_run`). Else it is asked every `ASK_EVERY` steps (a
        row stops up to that many steps late: more work, never another result), the steps
        between run row after row.
        A stopped row is still stepped while a row after it goes on (a prefix costs less than
        a selection), so it may have taken more steps than needed; the batch's arrays hold
        each row's state after the steps its `Tail` lists.
        """
        C = len(self.P)
        left = (~self.closed).sum(axis=1)  # S3 steps left per row
        assert np.all(np.diff(left) <= 0), "rows must come in non-increasing order of S3 steps left"
        steps = int(left.max(initial=0)) if max_steps is None else min(max_steps, int(left.max(initial=0)))
        rec = _Records(
            np.zeros((C, steps), dtype=np.int64), np.zeros((C, steps)), np.zeros((C, steps)),
            np.zeros((C, steps), dtype=np.int64), np.array(memory, dtype=np.int64),
        )  # fmt: skip
        going = left > 0
        taken = np.zeros(C, dtype=np.int64)
        t = 0
        while t < steps and beaten is not None:
            live = np.flatnonzero(going)
            if safe_memory is not None:
                live = live[rec.memory[live] > safe_memory]
            if not len(live):
                break
            A = int(live[-1]) + 1  # rows of a prefix, summed as views: the same bits per row, no copies
            upper = (self.coeff[:A] * self.inv_lcm[:A]).sum(axis=1)[live]
            going[live[beaten(live, rec.memory[live], upper)]] = False
            if not going.any():
                break
            end = min(t + ASK_EVERY, steps)
            taken += self._run(np.flatnonzero(going), left, t, end, rec)
            going &= left > end
            t = end
        if t < steps and going.any():
            taken += self._run(np.flatnonzero(going), left, t, steps, rec)
        return [
            Tail(rec.stage[c, : taken[c]], rec.ratio[c, : taken[c]], rec.rate[c, : taken[c]],
                 rec.row_memory[c, : taken[c]], bool(taken[c] == left[c]))
            for c in range(C)
        ]  # fmt: skip

    def _run(self, going: np.ndarray, left: np.ndarray, t: int, steps: int, rec: _Records) -> np.ndarray:
        """Steps `t..steps-1` with no stopping rule: rows `going` (ascending) each step until their
        S3 steps run out; return how many steps each row of the batch took."""
        # The rows going with a step left at step u are a prefix of `going` (left falls along
        # the rows): the lock-step takes the rows up to the last of them.
        count = np.searchsorted(-left[going], -np.arange(t, steps), side="left")
        prefix = going[count[count > 0] - 1] + 1
        taken = np.searchsorted(-prefix, -np.arange(len(self.P)), side="left").astype(np.int64)
        if kernel is not None:  # row after row, each through all its steps (the same bits)
            kernel.run(self, taken, t, rec.memory, rec.stage, rec.ratio, rec.rate, rec.row_memory)
        else:
            for u, A in enumerate(prefix.tolist(), start=t):
                self._numpy_step(A, u, rec.memory, rec.stage, rec.ratio, rec.rate, rec.row_memory)
        return taken

    def _numpy_step(
        self,
        A: int,
        t: int,
        memory: np.ndarray,
        rec_stage: np.ndarray,
        rec_ratio: np.ndarray,
        rec_rate: np.ndarray,
        rec_memory: np.ndarray,
    ) -> None:
        """The best S3 step of each of the first A rows (step `t` of the tails), recorded.

        The reference: `planner/_s3_kernel.c` does the same, bit for bit, when it is built."""
        open_ = ~self.closed[:A]
        cols = np.flatnonzero(open_.any(axis=0))
        lo, hi = int(cols[0]), int(cols[-1]) + 1
        lost = np.einsum("ci,cik->ck", self.terms[:A, :hi], self.share_upper[:A, :hi, lo:hi]) + self.own[:A, lo:hi]
        closed = ~open_[:, lo:hi]
        lost[closed] = math.inf  # never chosen; keeps the division quiet
        nbytes = self.nbytes[:A, lo:hi]
        # The usual case, every step left loses some rate, needs no care for zero, negative or
        # vanishing losses.
        r3 = nbytes / lost if lost.min() > _TINY else ratios(nbytes, lost)
        r3[closed] = -math.inf
        rows = np.arange(A)
        k = r3.argmax(axis=1)  # ties: the lowest stage
        stages = k + lo
        rec_ratio[:A, t] = r3[rows, k]
        rec_stage[:A, t] = stages
        memory[:A] -= self.saved[rows, stages]
        self.omit(rows, stages, lo, hi)
        rec_rate[:A, t] = exact_sums(self.terms[:A])
        rec_memory[:A, t] = memory[:A]


@lru_cache(maxsize=256)
def _fresh(num_stages: int) -> S3Batch:
    """The pair arrays of a chain of `num_stages` stages whose LCMs are all 1 (never written)."""
    out = S3Batch([num_stages], num_stages)
    first = out.share_diag[:] = np.take(out.share_flat, out.colm * out.table_width + 1)
    out.share_upper[:] = first[:, None, :] * out.upper
    out.met.flags.writeable = out.share_upper.flags.writeable = False
    return out
