"""What a training step costs in virtual time and FLOPs, from a `ModelProfile`.

A step is described by how many sample-passes of each kind it runs (`StepCost`); profiles turn
passes into seconds and FLOPs. A training step on `B` rows lasts `step_fixed_s + B·row_step_s`:
with profiles at two or more batch sizes the fixed part (kernel launches, optimizer step,
framework overhead — what batching amortises) and the per-row part are fitted to them; with one
profile the step is linear in the batch (`step_fixed_s = 0`), the closed forms' assumption. Real
steps are far from linear: a 16-row step of mnistnet costs 0.19× sixteen 1-row steps on this
CPU and 0.07× under the TITAN Xp roofline, and charging batches linearly would hand the B-Skip
baselines a handicap they do not have on hardware.

FLOPs follow SPEC §10.1: forward `FF = Σ fwd_flops`, backward `BF = 2·FF`. A step whose layers
`0..n-1` were frozen (aL-SAR, SPEC §10.2) did not run their backward: `frozen_backward_flops(rows, n)`
is what it saved, `rows · Σ_{l<n} 2·FF_l`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.profile import ModelProfile


@dataclass(frozen=True)
class StepCost:
    """Sample-passes a step runs: full forwards, full backwards, and forwards up to the features.

    `features` counts forwards through every layer but the classifier (Camel's coreset
    features). Fractions are allowed (a pass over part of a batch is still linear). `flops` is
    arithmetic that is no model pass (aL-SAR's per-sample gradient entries and freezing score),
    counted in FLOPs directly; its time is charged at the model's forward rate.
    """

    forward: float = 0.0
    backward: float = 0.0
    features: float = 0.0
    flops: float = 0.0

    def __add__(self, other: StepCost) -> StepCost:
        return StepCost(
            self.forward + other.forward,
            self.backward + other.backward,
            self.features + other.features,
            self.flops + other.flops,
        )

    @classmethod
    def train(cls, rows: int) -> StepCost:
        """One forward and one backward of `rows` samples: the plain SGD step."""
        return cls(forward=rows, backward=rows)


ZERO_COST = StepCost()


@dataclass(frozen=True)
class CostModel:
    """Seconds and FLOPs of one sample-pass of each kind (marginal, per row), plus the fixed
    seconds every training step pays whatever its number of rows."""

    forward_s: float
    backward_s: float
    features_s: float
    forward_flops: float
    features_flops: float
    slowest_layer_forward_s: float
    step_fixed_s: float = 0.0
    # Forward FLOPs of each layer for one row (SPEC §10.1's FF_l); empty for a hand-built model.
    layer_forward_flops: tuple[float, ...] = ()

    @classmethod
    def from_profile(cls, profile: ModelProfile) -> CostModel:
        return cls.from_profiles((profile,))

    @classmethod
    def from_profiles(cls, profiles: Sequence[ModelProfile]) -> CostModel:
        """Fit `T(B) = fixed + B·per_row` for forward, backward and features totals.

        One batch size gives a line through the origin. Both parts are kept ≥ 0 (timing noise
        can make a larger batch look cheaper per step): a negative slope becomes 0 and the fixed
        part absorbs the mean. FLOPs and the slowest layer's forward come from the smallest batch.
        """
        if not profiles:
            raise ValueError("a cost model needs at least one profile")
        base = min(profiles, key=lambda p: p.batch_size)
        per = 1.0 / base.batch_size
        batch = np.array([p.batch_size for p in profiles], dtype=np.float64)
        fits = [
            _affine(batch, np.array([totals(p) for p in profiles]))
            for totals in (
                lambda p: float(p.t_fwd.sum()),
                lambda p: float(p.t_bwd.sum()),
                lambda p: float(p.t_fwd[:-1].sum()),
            )
        ]
        (fwd_fixed, fwd_row), (bwd_fixed, bwd_row), (_, feat_row) = fits
        return cls(
            forward_s=fwd_row,
            backward_s=bwd_row,
            features_s=feat_row,
            forward_flops=float(base.fwd_flops.sum()) * per,
            features_flops=float(base.fwd_flops[:-1].sum()) * per,
            slowest_layer_forward_s=float(base.t_fwd.max()) * per,
            step_fixed_s=fwd_fixed + bwd_fixed,
            layer_forward_flops=tuple(float(f) * per for f in base.fwd_flops),
        )

    def seconds(self, cost: StepCost) -> float:
        seconds = cost.forward * self.forward_s + cost.backward * self.backward_s + cost.features * self.features_s
        if cost.flops and self.forward_flops > 0:
            seconds += cost.flops * self.forward_s / self.forward_flops
        return seconds

    def flops(self, cost: StepCost) -> float:
        # SPEC §10.1: a backward costs twice its forward.
        return (
            (cost.forward + 2.0 * cost.backward) * self.forward_flops + cost.features * self.features_flops + cost.flops
        )

    def frozen_backward_flops(self, rows: int, frozen_layers: int) -> float:
        """Backward FLOPs a step on `rows` rows did not run with layers `0..frozen_layers-1` frozen."""
        return rows * 2.0 * sum(self.layer_forward_flops[:frozen_layers])

    def step_s(self, rows: int) -> float:
        """A plain training step (forward + backward) on `rows` rows."""
        return self.step_fixed_s + rows * (self.forward_s + self.backward_s)

    @property
    def sample_step_s(self) -> float:
        """One plain training step on one sample."""
        return self.step_s(1)

    @property
    def sample_step_flops(self) -> float:
        return 3.0 * self.forward_flops

    @property
    def default_arrival_interval_s(self) -> float:
        """Ferret's `td = max_l t̂f_l`: the slowest layer's forward for one sample."""
        return self.slowest_layer_forward_s


def _affine(batch: np.ndarray, seconds: np.ndarray) -> tuple[float, float]:
    """Least-squares `(fixed, per_row)` with both ≥ 0; a line through 0 for one batch size."""
    if len(np.unique(batch)) < 2:
        return 0.0, float(np.mean(seconds / batch))
    slope, intercept = np.polyfit(batch, seconds, 1)
    if slope < 0:
        return float(np.mean(seconds)), 0.0
    if intercept < 0:
        return 0.0, float(np.dot(batch, seconds) / np.dot(batch, batch))
    return float(intercept), float(slope)
