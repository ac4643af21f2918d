"""What a training step costs in virtual time and FLOPs, from a `ModelProfile`.

A step is described by how many sample-passes of each kind it runs (`StepCost`); the profile
turns passes into seconds and FLOPs. Per-sample costs are the profile's per-layer sums divided
by the profile's batch size (the profile is linear in the batch: a step on `B` rows costs `B`
times one row — the same assumption the planner's closed forms make).

FLOPs follow SPEC §10.1: forward `FF = Σ fwd_flops`, backward `BF = 2·FF`.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.profile import ModelProfile


@dataclass(frozen=True)
class StepCost:
    """Sample-passes a step runs: full forwards, full backwards, and forwards up to the features.

    `features` counts forwards through every layer but the classifier (Camel's coreset
    features). Fractions are allowed (a pass over part of a batch is still linear).
    """

    forward: float = 0.0
    backward: float = 0.0
    features: float = 0.0

    def __add__(self, other: StepCost) -> StepCost:
        return StepCost(self.forward + other.forward, self.backward + other.backward, self.features + other.features)

    @classmethod
    def train(cls, rows: int) -> StepCost:
        """One forward and one backward of `rows` samples: the plain SGD step."""
        return cls(forward=rows, backward=rows)


ZERO_COST = StepCost()


@dataclass(frozen=True)
class CostModel:
    """Seconds and FLOPs of one sample-pass of each kind, read off a profile."""

    forward_s: float
    backward_s: float
    features_s: float
    forward_flops: float
    features_flops: float
    slowest_layer_forward_s: float

    @classmethod
    def from_profile(cls, profile: ModelProfile) -> CostModel:
        per = 1.0 / profile.batch_size
        t_fwd, t_bwd, flops = profile.t_fwd * per, profile.t_bwd * per, profile.fwd_flops * per
        return cls(
            forward_s=float(t_fwd.sum()),
            backward_s=float(t_bwd.sum()),
            features_s=float(t_fwd[:-1].sum()),
            forward_flops=float(flops.sum()),
            features_flops=float(flops[:-1].sum()),
            slowest_layer_forward_s=float(t_fwd.max()),
        )

    def seconds(self, cost: StepCost) -> float:
        return cost.forward * self.forward_s + cost.backward * self.backward_s + cost.features * self.features_s

    def flops(self, cost: StepCost) -> float:
        # SPEC §10.1: a backward costs twice its forward.
        return (cost.forward + 2.0 * cost.backward) * self.forward_flops + cost.features * self.features_flops

    @property
    def sample_step_s(self) -> float:
        """One plain training step on one sample (forward + backward)."""
        return self.forward_s + self.backward_s

    @property
    def sample_step_flops(self) -> float:
        return 3.0 * self.forward_flops

    @property
    def default_arrival_interval_s(self) -> float:
        """Ferret's `td = max_l t̂f_l`: the slowest layer's forward for one sample."""
        return self.slowest_layer_forward_s
