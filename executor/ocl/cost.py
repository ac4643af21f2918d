"""What a training step costs in virtual time and FLOPs, from a `ModelProfile`.

A step is described by how many sample-passes of each kind it runs (`StepCost`); profiles turn
passes into seconds and FLOPs. A training step on `B` rows lasts `step_fixed_s + B·row_step_s`:
with profiles at two or more batch sizes the fixed part (kernel launches, optimizer step,
framework overhead — what batching amortises) and the per-row part are fitted to them; with one
profile the step is linear in the batch (`step_fixed_s = 0`), the closed forms' assumption. The
fit is the twin's (`sim.costs.stage_fits` over the whole model as one stage), so the twin's
sequential learners (`sim.costs.ProfileCosts.from_profiles(profiles, (0, L))`) charge a B-row
step what this model charges. Real
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

from planner.profile import ModelProfile
from sim.costs import Affine, stage_fits


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
        """Fit `T(B) = fixed + B·per_row` for forward, backward and features totals with the
        twin's fit (`sim.costs.fit_affine`: both parts ≥ 0, one batch size gives a line through
        the origin). FLOPs and the slowest layer's forward come from the smallest batch."""
        if not profiles:
            raise ValueError("a cost model needs at least one profile")
        base = min(profiles, key=lambda p: p.batch_size)
        per = 1.0 / base.batch_size
        layers = base.num_layers
        (fwd,) = stage_fits(profiles, (0, layers), lambda p: p.t_fwd)
        (bwd,) = stage_fits(profiles, (0, layers), lambda p: p.t_bwd)
        features = stage_fits(profiles, (0, layers - 1, layers), lambda p: p.t_fwd)[0] if layers > 1 else Affine(0, 0)
        return cls(
            forward_s=fwd.per_row_s,
            backward_s=bwd.per_row_s,
            features_s=features.per_row_s,
            forward_flops=float(base.fwd_flops.sum()) * per,
            features_flops=float(base.fwd_flops[:-1].sum()) * per,
            slowest_layer_forward_s=float(base.t_fwd.max()) * per,
            step_fixed_s=fwd.fixed_s + bwd.fixed_s,
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
