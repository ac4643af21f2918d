"""The `empirical` jitter's table: the measured op-time factors of real-time runs, stalls included.

Each compute row's factor is its duration over the median of its contention cell (`contention.py`:
same run, row type, stage and crowding), so device and host contention are not counted twice. The
table is the sorted factors themselves, or, beyond `MAX_FACTORS` of them, that many quantiles
(`inverted_cdf`: every entry is a measured factor); the twin draws from it uniformly
(`sim.parts.Jitter`). Not fewer: what makes a one-slot buffer drop is the top 1 % of ops, and on the
distributed_rate calibration runs (~3000 ops each) a table of 256 quantiles left M+'s twin 2.27×
optimistic, 1024 2.05×, every factor 1.67× (docs/FIDELITY.md).

Normalisation. The fitted bases are each cell's median times `e^{σ²/2}` (the mean of the
log-normal whose median is the cell's), so the table is the quantiles times `e^{-σ²/2}`: a twin op,
base × factor, is then the cell's median × a measured ratio — the twin's op median is the measured
median (as under log-normal jitter) and its mean the measured mean with every stall in it, where the
log-normal's mean leaves ops over 20× their median out.

Only real-time runs (`distributed`) give a table: a replay runs one op at a time on the twin's
schedule and a twin run's spread is the twin's own jitter, so those keep the log-normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.calibrate.params import Fitted, fixed

MAX_FACTORS = 4096
STALL = 10.0  # an op over 10× its cell's median counts as a stall in the report


@dataclass(frozen=True)
class FactorTable:
    """The table (empty: no real-time run) and what the report says of the measured factors."""

    factors: tuple[float, ...]
    stall_share: Fitted
    largest: Fitted

    @property
    def varies(self) -> bool:
        """The factors differ (beyond the trace's printed digits): there is jitter to draw."""
        return bool(self.factors) and self.factors[-1] - self.factors[0] > 1e-9 * max(self.factors[-1], 1e-300)


def fit_factor_table(log_ratio: np.ndarray, sigma: float, most: int = MAX_FACTORS) -> FactorTable:
    """The table (at most `most` factors) from per-row `log(duration / cell median)` (NaN rows skipped)."""
    ratio = np.exp(log_ratio[np.isfinite(log_ratio)])
    if not len(ratio):
        why = "no real-time run (replay and twin runs follow the twin's own schedule)"
        return FactorTable((), fixed("jitter_stall_share", 0.0, "share", why), fixed("jitter_largest", 0.0, "×", why))
    size = min(len(ratio), most)  # at len(ratio) levels, inverted_cdf gives every factor once
    table = np.quantile(ratio, (np.arange(size) + 0.5) / size, method="inverted_cdf") * math.exp(-(sigma**2) / 2)
    share = float(np.mean(ratio > STALL))
    return FactorTable(
        factors=tuple(table.tolist()),
        stall_share=Fitted(
            "jitter_stall_share",
            share,
            math.sqrt(share * (1 - share) / len(ratio)),
            "share",
            f"ops over {STALL:g}× their cell's median, of {len(ratio)} in real-time runs",
        ),
        largest=Fitted("jitter_largest", float(ratio.max()), None, "×", "the slowest op over its cell's median"),
    )
