"""Field specs: bounds in words and as a check, defaults, and the field they ride on."""

from __future__ import annotations

import dataclasses
import math

import pytest

from planner.config_field import FieldSpec, config_field, field_default, field_spec


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (FieldSpec("h", "int", ge=1), "an integer ≥ 1"),
        (FieldSpec("h", "float", ge=0, lt=1), "in [0, 1)"),
        (FieldSpec("h", "float", gt=0, le=1), "in (0, 1]"),
        (FieldSpec("h", "seconds", gt=0), "> 0"),
        (FieldSpec("h", "float", lt=2.5), "< 2.5"),
        (FieldSpec("h", "int"), "an integer"),
        (FieldSpec("h"), ""),
    ],
)
def test_requirement_says_the_bounds(spec, text):
    assert spec.requirement() == text


def test_allows_checks_every_bound_each_number_of_a_pair_and_never_nan():
    unit = FieldSpec("h", "float", ge=0, lt=1)
    assert unit.allows(0.0) and unit.allows(0.999) and unit.allows(None)
    assert not unit.allows(1.0) and not unit.allows(-1e-9) and not unit.allows(math.nan)
    assert FieldSpec("h", "pair", ge=0, lt=1).allows((0.9, 0.999))
    assert not FieldSpec("h", "pair", ge=0, lt=1).allows((0.9, 1.0))
    assert FieldSpec("h", "text", gt=0).allows("anything")  # bounds apply to numbers only


def test_config_field_keeps_the_default_and_carries_the_spec():
    @dataclasses.dataclass(frozen=True)
    class C:
        a: int = config_field(3, help="a", unit="int", ge=1)
        b: dict = config_field(default_factory=dict, help="b", unit="key-value")

    fa, fb = dataclasses.fields(C)
    assert C().a == 3 and C().b == {} and C().b is not C().b
    assert field_spec(fa) == FieldSpec("a", "int", ge=1) and field_default(fb) == {}
    assert field_spec(fa).flag_for("a_b") == "a-b"
