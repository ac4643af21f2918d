"""What the twin charges for a plan's ops — seconds (a cost model) and bytes (the profile's sizes).

**Seconds: the `OpCosts` protocol.** The engine asks it, once per (worker, stage) slot and once
per mini-batch of a sequential learner, for the time of each kind of op on `rows` rows — an
`Affine` `fixed + rows·per_row` per stage for forward, backward and recomputation — plus the
per-op overhead (the op's own fixed cost plus the executor's loop between ops), the optimizer
step, the cost of a transfer, and the measured op-time factors (in time order) that `empirical`
jitter draws from. It never reads a timing anywhere else, so a calibrated model (per-stage times
fitted to measured traces) plugs in by implementing these methods: `simulate(..., costs=...)`.

`ProfileCosts` is the implementation from profiles: per stage, `fit_affine` over the profiles'
batch sizes (one profile: a line through 0, the closed forms' linear assumption; two or more:
the fixed part that batching amortises), times `SimConfig.time_scale`, with the overhead, update
and link parameters of the `SimConfig`. `fit_affine` is THE fit of the project: the sequential
executor's `executor.ocl.cost.CostModel` fits its step cost with it too, so the twin's 1-Skip /
B-Skip learners and `ferret run` charge a B-row step the same.

**Bytes: `StageBytes`** from the planner's closed forms (`stage_sizes`: `w_j`, `a_j` and the
recomputation saving `s_j` of SPEC §3.3), so the twin and (F4) count the same bytes. A stage's
boundary payload (sent forward, and its gradient sent back) is its last layer's output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from planner.closed_form import stage_shares, stage_sizes
from planner.errors import ValidationError
from planner.plan import Plan
from planner.profile import ModelProfile
from sim.config import SimConfig


@dataclass(frozen=True)
class Affine:
    """`fixed_s + rows·per_row_s` seconds for an op on `rows` rows."""

    fixed_s: float
    per_row_s: float

    def seconds(self, rows: int) -> float:
        return self.fixed_s + rows * self.per_row_s

    def share(self, rows: int) -> float:
        """One row's share of a `rows`-row op (the twin runs a sequential learner's batch row by row)."""
        return self.fixed_s / rows + self.per_row_s

    def scaled(self, factor: float) -> Affine:
        return Affine(self.fixed_s * factor, self.per_row_s * factor)


def fit_affine(batch_sizes: Sequence[int] | np.ndarray, seconds: Sequence[float] | np.ndarray) -> Affine:
    """Least-squares `seconds = fixed + batch·per_row` with both parts ≥ 0.

    One batch size gives a line through 0. Timing noise can make a larger batch look cheaper
    per step: a negative slope becomes 0 (the fixed part absorbs the mean), a negative
    intercept becomes 0 (a line through 0 fitted to all points).
    """
    batch = np.asarray(batch_sizes, dtype=np.float64)
    secs = np.asarray(seconds, dtype=np.float64)
    if not len(batch) or bool((batch == batch[0]).all()):  # one batch size (np.unique would import numpy.ma)
        return Affine(0.0, float(np.mean(secs / batch)))
    slope, intercept = np.polyfit(batch, secs, 1)
    if slope < 0:
        return Affine(float(np.mean(secs)), 0.0)
    if intercept < 0:
        return Affine(0.0, float(np.dot(batch, secs) / np.dot(batch, batch)))
    return Affine(float(intercept), float(slope))


def stage_fits(
    profiles: Sequence[ModelProfile], partition: Sequence[int], times: Callable[[ModelProfile], np.ndarray]
) -> tuple[Affine, ...]:
    """Per stage of `partition`: `fit_affine` of the stage's summed `times(profile)` over the profiles."""
    if not profiles:
        raise ValueError("a cost model needs at least one profile")
    starts = np.asarray(partition[:-1], dtype=np.intp)
    per_stage = np.array([np.add.reduceat(times(p), starts) for p in profiles])  # (profiles, stages)
    batch = [p.batch_size for p in profiles]
    return tuple(fit_affine(batch, per_stage[:, j]) for j in range(len(starts)))


class OpCosts(Protocol):
    """The seconds the twin charges; see the module docstring."""

    @property
    def free_links(self) -> bool:
        """Transfers cost nothing: the engine hands payloads over without a link."""
        ...

    def forward(self, stage: int) -> Affine: ...

    def backward(self, stage: int) -> Affine: ...

    def recompute(self, stage: int) -> Affine: ...

    def overhead_s(self, stage: int) -> float: ...

    def update_s(self, stage: int) -> float: ...

    def transfer_s(self, nbytes: int) -> tuple[float, float]:
        """(seconds the link is busy with `nbytes`, seconds from then until they land)."""
        ...

    @property
    def jitter_sequence(self) -> tuple[float, ...]:
        """Measured op-time factors in the order they were measured (finite, ≥ 0) that
        `SimConfig.jitter = "empirical"` draws from; empty: none (`check_jitter_sequence`)."""
        ...


def check_jitter_sequence(values: Sequence[float], where: str) -> tuple[float, ...]:
    """A jitter sequence as the twin draws from it: non-empty, finite, ≥ 0 (in time order, so any order)."""
    sequence = tuple(float(v) for v in values)
    if not sequence:
        raise ValidationError(f"{where}: jitter_sequence is empty (leave it out for none)")
    if not all(math.isfinite(v) and v >= 0 for v in sequence):
        raise ValidationError(f"{where}: jitter_sequence must be finite and ≥ 0")
    return sequence


@dataclass(frozen=True)
class ProfileCosts:
    """`OpCosts` from profiles of one model (at one or more batch sizes) and a `SimConfig`."""

    forwards: tuple[Affine, ...]
    backwards: tuple[Affine, ...]
    op_overhead_s: float = 0.0
    optimizer_step_s: float = 0.0
    link_latency_s: float = 0.0
    link_bandwidth_Bps: float = float("inf")
    loop_s: float = 0.0
    jitter_sequence: tuple[float, ...] = ()  # `empirical` jitter's factors; a profile has none

    @classmethod
    def from_profiles(
        cls, profiles: Sequence[ModelProfile], partition: Sequence[int], config: SimConfig | None = None
    ) -> ProfileCosts:
        config = SimConfig() if config is None else config
        scale = config.time_scale
        return cls(
            forwards=tuple(a.scaled(scale) for a in stage_fits(profiles, partition, lambda p: p.t_fwd)),
            backwards=tuple(a.scaled(scale) for a in stage_fits(profiles, partition, lambda p: p.t_bwd)),
            op_overhead_s=config.op_overhead_s,
            optimizer_step_s=config.update_s,
            link_latency_s=config.link_latency_s,
            link_bandwidth_Bps=config.link_bandwidth_Bps,
            loop_s=config.loop_s,
        )

    @property
    def free_links(self) -> bool:
        return self.link_latency_s == 0 and math.isinf(self.link_bandwidth_Bps)

    def forward(self, stage: int) -> Affine:
        return self.forwards[stage]

    def backward(self, stage: int) -> Affine:
        return self.backwards[stage]

    def recompute(self, stage: int) -> Affine:
        return self.forwards[stage]  # T1 reruns the stage's forward

    def overhead_s(self, stage: int) -> float:
        # the loop's time between ops occupies the device like the op's own fixed cost
        return self.op_overhead_s + self.loop_s

    def update_s(self, stage: int) -> float:
        return self.optimizer_step_s

    def transfer_s(self, nbytes: int) -> tuple[float, float]:
        return nbytes / self.link_bandwidth_Bps, self.link_latency_s


@dataclass(frozen=True)
class StageBytes:
    """Per-stage sizes in bytes of one plan's partition, from the profile (SPEC §1 symbols).

    Each tuple has one entry per stage: weights `w_j`, activations `a_j`, recomputation saving `s_j`,
    the boundary tensor sent to the next stage, and the stage's share `w_j / Σ w` of a datum's value
    (SPEC §2). Built by `stage_bytes`.
    """

    weight_bytes: tuple[int, ...]  # w_j
    act_bytes: tuple[int, ...]  # a_j
    recompute_saving: tuple[int, ...]  # s_j
    boundary_bytes: tuple[int, ...]  # output of stage j's last layer
    value_shares: tuple[float, ...]  # w_j / Σ w (SPEC §2)

    @property
    def num_stages(self) -> int:
        return len(self.weight_bytes)

    def stored_bytes(self, stage: int, recompute: bool) -> int:
        """Activation bytes a stage keeps per datum until its backward: `a_j - c^r·s_j`."""
        return self.act_bytes[stage] - (self.recompute_saving[stage] if recompute else 0)


def stage_bytes(profile: ModelProfile, plan: Plan) -> StageBytes:
    ends = np.asarray(plan.partition[1:], dtype=np.intp)
    w, a, s = stage_sizes(profile, plan.partition)
    return StageBytes(
        weight_bytes=tuple(int(x) for x in w),
        act_bytes=tuple(int(x) for x in a),
        recompute_saving=tuple(int(x) for x in s),
        boundary_bytes=tuple(int(x) for x in profile.act_bytes[ends - 1]),
        value_shares=tuple(stage_shares(profile, plan.partition).tolist()),
    )
