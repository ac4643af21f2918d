"""Per-stage costs of a plan on a profile: the numbers the engine and the memory ledger use.

Sizes come from the planner's closed forms (`stage_sizes`: `w_j`, `a_j` and the recomputation
saving `s_j` of SPEC §3.3), so the twin and (F4) count the same bytes. A stage's boundary
payload (sent forward, and its gradient sent back) is its last layer's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.closed_form import stage_shares, stage_sizes
from planner.plan import Plan
from planner.profile import ModelProfile


@dataclass(frozen=True)
class StageCosts:
    t_fwd: tuple[float, ...]  # seconds per datum, per stage
    t_bwd: tuple[float, ...]
    weight_bytes: tuple[int, ...]  # w_j
    act_bytes: tuple[int, ...]  # a_j
    recompute_saving: tuple[int, ...]  # s_j
    boundary_bytes: tuple[int, ...]  # output of stage j's last layer
    value_shares: tuple[float, ...]  # w_j / Σ w (SPEC §2)

    @property
    def num_stages(self) -> int:
        return len(self.t_fwd)

    def stored_bytes(self, stage: int, recompute: bool) -> int:
        """Activation bytes a stage keeps per datum until its backward: `a_j - c^r·s_j`."""
        return self.act_bytes[stage] - (self.recompute_saving[stage] if recompute else 0)


def stage_costs(profile: ModelProfile, plan: Plan) -> StageCosts:
    starts = np.asarray(plan.partition[:-1], dtype=np.intp)
    ends = np.asarray(plan.partition[1:], dtype=np.intp)
    w, a, s = stage_sizes(profile, plan.partition)
    return StageCosts(
        t_fwd=tuple(np.add.reduceat(profile.t_fwd, starts).tolist()),
        t_bwd=tuple(np.add.reduceat(profile.t_bwd, starts).tolist()),
        weight_bytes=tuple(int(x) for x in w),
        act_bytes=tuple(int(x) for x in a),
        recompute_saving=tuple(int(x) for x in s),
        boundary_bytes=tuple(int(x) for x in profile.act_bytes[ends - 1]),
        value_shares=tuple(stage_shares(profile, plan.partition).tolist()),
    )
