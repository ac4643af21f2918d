"""Physical bounds (planner.quantities) and work limits (planner.limits)."""

import math

import pytest

from planner.errors import ValidationError
from planner.limits import check_plannable, check_work, limits, raised_limits
from planner.profile import LayerProfile, ModelProfile
from planner.quantities import MAX_BYTES, check_size, check_time, unit_problem


@pytest.mark.parametrize(
    ("unit", "value", "ok"),
    [
        ("bytes", 1, True),
        ("bytes", MAX_BYTES, True),
        ("bytes", MAX_BYTES + 1, False),
        ("bytes", 0.3, False),
        ("seconds", 0.0, True),
        ("seconds", 1e-12, True),
        ("seconds", 5e-324, False),
        ("seconds", 1e9, True),
        ("seconds", 1e10, False),
        ("seed", 2**32 - 1, True),
        ("seed", 2**32, False),
        ("seed", -1, False),
        ("bandwidth", math.inf, True),
        ("bandwidth", 1e-300, False),
        ("float", 1e15, True),
        ("float", 1e16, False),
        ("int", 2**53, True),
        ("int", 2**53 + 1, False),
        ("flops", 0, True),
        ("flops", 1, True),
        ("flops", 1e21, True),
        ("flops", 0.5, False),
        ("flops", 1e22, False),
    ],
)
def test_each_unit_holds_its_values_to_what_they_measure(unit, value, ok):
    assert (unit_problem(unit, value) is None) == ok


def test_size_and_time_checks_name_the_field():
    check_size(5, "x")
    with pytest.raises(ValidationError, match="x must be an integer number of bytes"):
        check_size(5.0, "x")
    with pytest.raises(ValidationError, match="plan.t must be a positive time, got 0"):
        check_time(0.0, "plan.t", positive=True)
    with pytest.raises(ValidationError, match="must be a finite time"):
        check_time(math.nan, "t")


def test_check_work_names_the_flag_and_raised_limits_lets_it_through():
    with pytest.raises(
        ValidationError, match=r"a sweep needs 3,000 points, above the limit of 2,000 points \(--max-points"
    ):
        check_work("max_points", 3000, "a sweep", "points")
    with pytest.raises(ValidationError, match=r"needs 8 GiB, above the limit of 4 GiB \(--max-memory raises it\)"):
        check_work("max_memory_bytes", 8 * 2**30, "a model")
    with raised_limits(max_points=5000) as raised:
        assert raised.max_points == 5000
        check_work("max_points", 3000, "a sweep")
    assert limits().max_points == 2000


def test_planning_refuses_too_many_workers_and_sums_past_int64():
    layers = tuple(LayerProfile(f"l{i}", 1e-3, 2e-3, 2**47, 2**47) for i in range(4))  # 1 PiB in all
    profile = ModelProfile("m", layers).validate()
    check_plannable(profile, 1e-3)  # ⌈(2·4 ms + 8 ms) / 1 ms⌉ = 16 workers
    with pytest.raises(ValidationError, match="needs 16 workers.*--max-workers"), raised_limits(max_workers=15):
        check_plannable(profile, 1e-3)
    with pytest.raises(ValidationError, match="more than 2\\*\\*62 bytes"):
        check_plannable(profile, 1.9e-5)  # 843 workers × 5 × 2**50 bytes
