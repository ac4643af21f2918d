"""The twin under owner placement (every worker's stage j on one owner device): ops run where
the stage lives, never overlap there, and a saturated pipeline runs at the busiest owner's pace."""

from __future__ import annotations

import itertools

import pytest

from planner.closed_form import stage_sizes
from planner.placement import owner_placement
from planner.plan import Plan, WorkerConfig
from planner.profile import LayerProfile, ModelProfile
from sim import MemoryTrace, simulate

# Stages (tf, tb) = (3, 6), (1, 2), (1, 2), (1, 2) s: owners {0} and {1, 2, 3}, 9 s per datum each.
PROFILE = ModelProfile(
    "m", tuple(LayerProfile(f"l{i}", t, 2 * t, 100 * (i + 1), 10) for i, t in enumerate([3, 1, 1, 1]))
)
PARTITION = (0, 1, 2, 3, 4)


def test_a_saturated_owner_placement_runs_every_op_on_its_owner_at_the_busiest_owners_pace():
    placement = owner_placement(PROFILE, PARTITION, num_workers=2, num_devices=2)
    assert placement == ((0, 1, 1, 1),) * 2
    plan = Plan("ferret", PARTITION, tuple(WorkerConfig.default(n, 4) for n in range(2)), placement, 1.0)
    trace = MemoryTrace()
    result = simulate(plan, PROFILE, 2000, trace=trace)
    ops = [e for e in trace.events() if e.kind in ("fwd", "bwd")]
    assert all(e.device == placement[e.worker][e.stage] for e in ops)
    for device in (0, 1):
        spans = sorted((e.t_start, e.t_end) for e in ops if e.device == device)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    within = int((result.update_s[:, 0] <= result.horizon_s).sum())  # trained while the stream ran
    assert within / result.horizon_s == pytest.approx(1 / 9, rel=0.02)  # both owners busy 9 s per datum
    assert min(result.utilisation) > 0.95
    w, _, _ = stage_sizes(PROFILE, PARTITION)
    assert result.final_memory_bytes == int(w.sum())  # one set of weights per stage, on its owner
