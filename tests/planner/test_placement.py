"""Owner placement: contiguous stage blocks on D devices, balanced by stage time (exactly)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner.errors import ValidationError
from planner.placement import owner_blocks, owner_placement
from planner.profile import LayerProfile, ModelProfile


def test_exact_cases():
    assert owner_blocks([3, 1, 1, 1], 2) == (0, 1, 1, 1)
    assert owner_blocks([1, 1, 1, 1], 2) == (0, 0, 1, 1)
    assert owner_blocks([1, 2, 3], 1) == (0, 0, 0)
    assert owner_blocks([1, 2, 3], 5) == (0, 1, 2)  # more devices than stages: one stage each
    with pytest.raises(ValidationError, match="devices must be ≥ 1"):
        owner_blocks([1.0], 0)


def test_every_worker_puts_a_stage_on_its_owner():
    profile = ModelProfile("m", tuple(LayerProfile(f"l{i}", t, 2 * t, 8, 8) for i, t in enumerate([3, 1, 1, 1, 1])))
    placement = owner_placement(profile, (0, 1, 2, 3, 5), num_workers=3, num_devices=2)
    assert placement == ((0, 1, 1, 1),) * 3  # stage times 9 | 3 + 3 + 6


@given(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=7), st.integers(1, 8))
def test_blocks_are_contiguous_use_every_device_and_are_optimal(seconds, devices):
    owners = owner_blocks(seconds, devices)
    blocks = min(devices, len(seconds))
    assert list(owners) == sorted(owners) and set(owners) == set(range(blocks))
    load = max(sum(s for s, o in zip(seconds, owners, strict=True) if o == d) for d in range(blocks))
    best = min(
        max(sum(seconds[a:b]) for a, b in itertools.pairwise((0, *cuts, len(seconds))))
        for cuts in itertools.combinations(range(1, len(seconds)), blocks - 1)
    )
    assert load == pytest.approx(best, rel=1e-12)
