"""Field specs: bounds in words and as a check, defaults, and the field they ride on."""

from __future__ import annotations

import dataclasses
import math

import pytest

from planner.config_field import FieldSpec, check_bounds, config_field, field_default, field_spec
from planner.errors import ValidationError


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


def test_check_bounds_names_the_first_field_outside_its_bounds():
    @dataclasses.dataclass(frozen=True)
    class C:
        rate: float = config_field(0.5, help="r", unit="float", ge=0, lt=1)
        free: float = config_field(math.inf, help="f", unit="bandwidth", gt=0, finite=False)
        any_: float = config_field(0.0, help="a", unit="float")

    check_bounds(C(), "c")  # infinity is allowed where `finite=False`
    for kwargs, message in [
        ({"rate": 1.0}, "c rate must be in [0, 1), got 1.0"),
        ({"rate": math.inf}, "c rate must be finite and in [0, 1), got inf"),
        ({"free": 0.0}, "c free must be > 0, got 0.0"),
        ({"any_": math.nan}, "c any_ must be finite, got nan"),
        ({"rate": "0.5"}, "c rate must be in [0, 1), got '0.5'"),
    ]:
        with pytest.raises(ValidationError) as exc:
            check_bounds(C(**kwargs), "c")
        assert str(exc.value) == message


def test_check_bounds_checks_each_fields_type_from_its_declaration():
    """Integers, flags, choices and None come from the declaration too, so a config's
    `validate()` needs no hand-written copy of them (SimConfig, the optimizer, algorithms)."""

    @dataclasses.dataclass(frozen=True)
    class C:
        count: int = config_field(2, help="n", unit="int", ge=1, le=2**31)
        seed: int = config_field(0, help="s", unit="seed")
        on: bool = config_field(False, help="o", unit="flag")
        mode: str = config_field("a", help="m", choices=("a", "b"))
        modes: tuple[str, ...] = config_field(("a",), help="ms", choices=("a", "b"), repeat=True)
        limit: int | None = config_field(None, help="l", unit="int", ge=0)

    check_bounds(C(), "c")
    check_bounds(C(modes=("b", "a"), limit=0), "c")
    for kwargs, message in [
        ({"count": 1.5}, "c count must be an integer in [1, 2147483648], got 1.5"),
        ({"count": True}, "c count must be an integer in [1, 2147483648], got True"),
        ({"count": None}, "c count must be given, got None"),
        ({"seed": 0.0}, "c seed must be an integer, got 0.0"),
        ({"on": 1}, "c on must be true or false, got 1"),
        ({"mode": "c"}, "c mode must be one of a, b, got 'c'"),
        ({"modes": ("a", "c")}, "c modes must be one of a, b, got ('a', 'c')"),
        ({"limit": -1}, "c limit must be an integer ≥ 0, got -1"),
    ]:
        with pytest.raises(ValidationError) as exc:
            check_bounds(C(**kwargs), "c")
        assert str(exc.value) == message
