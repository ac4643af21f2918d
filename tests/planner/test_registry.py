"""`Registry[T]`: the one name → entry type every family (strategies, models, data sets, …) uses."""

from __future__ import annotations

import pytest

from planner.errors import FerretError, ValidationError
from planner.registry import Registry, UnknownNameError


def colours() -> Registry[int]:
    reg: Registry[int] = Registry("colour", {"red": 1})
    reg.add("green", 2, "verde")

    reg.register("blue", "azul", "bleu")(3)
    return reg


def test_names_keep_registration_order_and_leave_aliases_out():
    reg = colours()
    assert reg.names() == ("red", "green", "blue")
    assert list(reg) == ["red", "green", "blue"] and len(reg) == 3
    assert [k for k, _ in reg.items()] == ["red", "green", "blue"]


def test_aliases_resolve_to_their_entry():
    reg = colours()
    assert reg["verde"] == reg["green"] == 2
    assert reg["azul"] is reg["bleu"] is reg["blue"]
    assert reg.canonical("bleu") == "blue" and reg.canonical("red") == "red"
    assert "azul" in reg and "purple" not in reg and 3 not in reg


def test_the_decorator_returns_what_it_registers():
    reg: Registry[type] = Registry("thing")

    @reg.register("a")
    class A:
        pass

    assert reg["a"] is A


@pytest.mark.parametrize(("name", "aliases"), [("red", ()), ("verde", ()), ("pink", ("azul",)), ("pink", ("red",))])
def test_a_name_or_alias_registered_twice_is_an_error(name, aliases):
    reg = colours()
    with pytest.raises(RuntimeError, match="colour '.*' registered twice"):
        reg.add(name, 9, *aliases)
    assert "pink" not in reg  # nothing half-registered


def test_an_unknown_name_is_one_line_listing_the_choices():
    reg = colours()
    with pytest.raises(UnknownNameError) as exc:
        reg["purple"]
    assert str(exc.value) == "unknown colour 'purple'; choose one of red, green, blue"
    assert isinstance(exc.value, ValidationError) and isinstance(exc.value, FerretError)
    assert isinstance(exc.value, KeyError)  # so dict idioms keep working
    assert reg.get("purple") is None and reg.get("verde") == 2


def test_a_family_may_reword_the_unknown_name_line():
    reg: Registry[int] = Registry("mode", {"replay": 1}, message="{kind} {name!r} is not available; known: {choices}")
    with pytest.raises(ValidationError, match=r"^mode 'x' is not available; known: replay$"):
        reg["x"]
