"""The `empirical` jitter's sequence: the measured op-time factors of real-time runs, stalls
included, in the order they were measured.

Each compute row's factor is its duration over the median of its contention cell (`contention.py`:
same run, row type, stage and crowding), so device and host contention are not counted twice. The
sequence holds every factor, ordered by run, then device (rank), then the start of its job: each
device's ops in time order, one after another. The twin draws `jitter_block` consecutive entries at
a time from a random start, one stream per device (`sim.parts.Jitter`), so a twin device goes
through the measured rank's slow and fast phases: measured op times are not independent (lag-1
autocorrelation 0.58, ~0 by lag 100; docs/FIDELITY.md). `JITTER_BLOCK` is the block length
`ferret calibrate` sets, chosen by measurement (docs/RESULTS.md §5). Beyond `MAX_FACTORS` factors
the sequence keeps its first `MAX_FACTORS` — the first runs' devices whole, in order — so costs.json
stays under ~400 kB (a distributed_rate calibration run has ~2,400). Every factor, not a summary:
what makes a one-slot buffer drop is the top 1 % of ops, and on the distributed_rate calibration
runs a table of 256 of their quantiles left M+'s twin 2.27× optimistic, 1024 2.05×, every factor
1.67× (docs/FIDELITY.md).

Normalisation. The fitted bases are each cell's median times `e^{σ²/2}` (the mean of the
log-normal whose median is the cell's), so the sequence is the ratios times `e^{-σ²/2}`: a twin op,
base × factor, is then the cell's median × a measured ratio — the twin's op median is the measured
median (as under log-normal jitter) and its mean the measured mean with every stall in it, where the
log-normal's mean leaves ops over 20× their median out.

Only real-time runs (`distributed`) give a sequence: a replay runs one op at a time on the twin's
schedule and a twin run's spread is the twin's own jitter, so those keep the log-normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.calibrate.params import Fitted, fixed

MAX_FACTORS = 16384
JITTER_BLOCK = 32  # ops per block of the measured sequence (docs/RESULTS.md §5)
STALL = 10.0  # an op over 10× its cell's median counts as a stall in the report


@dataclass(frozen=True)
class FactorSequence:
    """The sequence (empty: no real-time run) and what the report says of the measured factors."""

    factors: tuple[float, ...]
    stall_share: Fitted
    largest: Fitted

    @property
    def varies(self) -> bool:
        """The factors differ (beyond the trace's printed digits): there is jitter to draw."""
        return bool(self.factors) and max(self.factors) - min(self.factors) > 1e-9 * max(max(self.factors), 1e-300)


def fit_factor_sequence(
    log_ratio: np.ndarray, sigma: float, stream: np.ndarray, start: np.ndarray, most: int = MAX_FACTORS
) -> FactorSequence:
    """The sequence (at most `most` factors) from per-row `log(duration / cell median)` (NaN rows
    skipped), ordered by `stream` (a run's device), then by `start` (its job's start)."""
    kept = np.isfinite(log_ratio)
    ratio = np.exp(log_ratio[kept])
    if not len(ratio):
        why = "no real-time run (replay and twin runs follow the twin's own schedule)"
        return FactorSequence(
            (), fixed("jitter_stall_share", 0.0, "share", why), fixed("jitter_largest", 0.0, "×", why)
        )
    order = np.lexsort((start[kept], stream[kept]))[:most]
    sequence = ratio[order] * math.exp(-(sigma**2) / 2)
    share = float(np.mean(ratio > STALL))
    return FactorSequence(
        factors=tuple(sequence.tolist()),
        stall_share=Fitted(
            "jitter_stall_share",
            share,
            math.sqrt(share * (1 - share) / len(ratio)),
            "share",
            f"ops over {STALL:g}× their cell's median, of {len(ratio)} in real-time runs",
        ),
        largest=Fitted("jitter_largest", float(ratio.max()), None, "×", "the slowest op over its cell's median"),
    )
