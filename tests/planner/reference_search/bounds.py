"""Upper bounds on what Alg. 2 can reach for one (partition, c^r), used to skip searches.

Both bounds hold for every configuration the search can produce, so skipping a candidate
whose bound cannot beat the best rate found changes nothing in the result.

* Counting bound: no worker rates above its no-technique rate `R_0`, and none fits in less
  than one version per stage (`M_min`), so at most `min(N, ⌊M/M_min⌋)·R_0`.
* Lagrangian bound: for any `λ ≥ 0`, the best total rate within budget `M` is at most
  `N·max(0, max_s [R(s) - λ·M(s)]) + λ·M` (each worker is either removed or in some state s).
  The inner maximum is bounded stage by stage by dropping the coupling through the omission
  LCMs of other stages: stage i with `1 + m` versions (an S2 rung) rates at most
  `c_i·g(c^a_m)`, and with one version (S3) at most `c_i / (P-i)`. The bound is the minimum
  over a geometric grid of `λ` (any `λ` gives a valid bound; the grid only costs tightness).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tests.planner.reference_search.closed_form import accumulation_mean
from tests.planner.reference_search.step_tables import s2_ladder
from tests.planner.reference_search.worker_chain import StageModel

_GRID = 48
_UNIT = np.linspace(0.0, 1.0, _GRID)


@lru_cache(maxsize=256)
def _option_table(num_stages: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For P stages, every per-stage option grouped by stage: `(stage, c^a, versions, is_s3)`."""
    stage_ids: list[int] = []
    acc_all: list[int] = []
    versions: list[int] = []
    s3: list[bool] = []
    for i in range(num_stages):
        K = num_stages - 1 - i
        acc, m = s2_ladder(K)
        stage_ids.extend([i] * len(acc))
        acc_all.extend(acc)
        versions.extend(1 + mm for mm in m)
        s3.extend([False] * len(acc))
        if K >= 1:
            stage_ids.append(i)
            acc_all.append(1)
            versions.append(1)
            s3.append(True)
    return np.array(stage_ids), np.array(acc_all), np.array(versions, dtype=np.float64), np.array(s3)


def _stage_options(model: StageModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per option: its stage, its rate bound and its bytes; options grouped by stage."""
    P = model.num_stages
    stage_ids, acc, versions, s3 = _option_table(P)
    coeff = model.coeff[stage_ids]
    rates = np.where(s3, coeff / (P - stage_ids), coeff * accumulation_mean(model.decay_cycle, acc))
    return stage_ids, rates, versions * model.stage_bytes[stage_ids]


@dataclass(frozen=True)
class RateBound:
    """Both bounds for one (partition, c^r) and N; everything but the budget precomputed."""

    rate0: float  # one worker's no-technique rate
    min_bytes: int  # one worker with one version per stage
    num_workers: int
    lam: np.ndarray  # the λ grid
    base: np.ndarray  # N·max(0, max_s [R(s) - λ·M(s)]) on the grid

    @classmethod
    def of(cls, model: StageModel, num_workers: int) -> RateBound:
        stage_ids, rates, nbytes = _stage_options(model)
        rate0 = float(model.coeff.sum())
        min_bytes = model.min_worker_bytes
        lo = rate0 / (num_workers * max(1.0, float(nbytes.sum()))) * 1e-3
        hi = rate0 / max(1.0, float(min_bytes)) * 1e3
        lam = lo * np.exp(_UNIT * np.log(hi / lo)) if rate0 > 0 else np.zeros(1)  # geometric grid
        value = rates[:, None] - nbytes[:, None] * lam[None, :]  # (options, λ)
        starts = np.flatnonzero(np.r_[True, stage_ids[1:] != stage_ids[:-1]])
        per_worker = np.maximum.reduceat(value, starts, axis=0).sum(axis=0)
        return cls(rate0, min_bytes, num_workers, lam, num_workers * np.maximum(per_worker, 0.0))

    def __call__(self, budget: int | None) -> float:
        """An upper bound on the total rate of any search state within `budget`."""
        if budget is None:
            return self.num_workers * self.rate0
        counting = min(self.num_workers, budget // max(1, self.min_bytes)) * self.rate0
        return min(counting, float((self.base + self.lam * budget).min()))
