"""`check_stream` is the one rule for (td, c, V_D): StreamSpec, FerretPlanner and Plan.validate use it."""

from __future__ import annotations

import math

import pytest

from planner.errors import ValidationError
from planner.plan import Plan, WorkerConfig, default_placement
from planner.search import FerretPlanner
from planner.stream import StreamSpec, check_stream
from tests.planner.profiles import uniform_profile

BAD = [
    ((0.0, 1.0, 1.0), "arrival interval must be a positive time", "plan.arrival_interval_s"),
    ((math.inf, 1.0, 1.0), "arrival interval must be a positive time", "plan.arrival_interval_s"),
    ((1.0, -0.1, 1.0), "decay rate must be ≥ 0 per second", "plan.decay_per_s"),
    ((1.0, math.nan, 1.0), "decay rate must be ≥ 0 per second", "plan.decay_per_s"),
    ((1.0, 1.0, 0.0), "value per datum must be positive", "plan.value_per_datum"),
]


@pytest.mark.parametrize(("stream", "words", "field"), BAD)
def test_every_entry_point_rejects_a_bad_stream_with_the_same_rule(stream, words, field):
    td, c, v = stream
    with pytest.raises(ValidationError, match=words):
        check_stream(td, c, v)
    with pytest.raises(ValidationError, match=words):
        StreamSpec(td, c, v)
    with pytest.raises(ValidationError, match=words):
        FerretPlanner(uniform_profile(2), td, c, v)
    plan = Plan("ferret", (0, 1, 2), (WorkerConfig.default(0, 2),), default_placement(1, 2), td, c, None, v)
    with pytest.raises(ValidationError, match=f"^{field} must be"):
        plan.validate()


def test_a_good_stream_passes():
    check_stream(1e-3, 0.0, 2.0)
    assert StreamSpec(1e-3).decay_per_s == 1.0
