"""Config fields that describe themselves: help, flag, unit and bounds in the field's metadata.

A config dataclass in any layer declares a field with `config_field(default, help=..., unit=...)`
and the `ferret` CLI (analysis/config_args.py) makes the flag from it: name, help text,
default, parser and bounds all come from this one declaration, so a field cannot drift from its
flag. The unit is a name (`Unit`), not a parser, so this module (the lowest layer) needs none:
the parsers of human units live at the CLI edge (analysis/units.py). Bounds are plain numbers
(`gt`, `ge`, `lt`, `le`, as in pydantic; numbers are finite unless `finite=False`) that
`FieldSpec.problem` and `check_bounds` check anywhere, with the unit's type (an integer, a
flag's bool), `choices`, and None only where the field's type allows it: a config's
`validate()` checks what the CLI parser does by calling `check_bounds`, and writes by hand
only what no single field can say. Beyond its declared bounds, a value must be what its unit
measures (planner.quantities: a size fits in 1 PiB, a non-zero time lies in [1 ps, ~31 years],
a seed in 32 bits, ...), so no field can let an overflowing or vanishing number through.

A field the CLI sets in another way says how (`via`), so that every field is either a flag or
explains why not; a nested config field says `via` too (its own fields carry the flags).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from planner.errors import ValidationError
from planner.quantities import unit_problem

#: How a flag's text becomes a value. `flag`: a switch (store true); `key-value`: a repeatable
#: KEY=VALUE flag gathered into a mapping; `pair`: two comma-separated numbers.
Unit = Literal[
    "int",
    "seed",
    "float",
    "bytes",
    "seconds",
    "rate",
    "bandwidth",
    "flops",
    "text",
    "path",
    "flag",
    "pair",
    "key-value",
]
NUMERIC: tuple[Unit, ...] = ("int", "seed", "float", "bytes", "seconds", "rate", "bandwidth", "flops", "pair")
METADATA_KEY = "ferret"


@dataclass(frozen=True)
class FieldSpec:
    """What the CLI needs to know about one config field (see the module docstring).

    `flag` defaults to the field name with dashes; `choices` are enforced by the parser, while
    `names` (a function, e.g. a registry's keys, called only when help is shown) are listed in
    the help where it says `{names}`. `setting_of` makes the field a KEY of that repeatable
    KEY=VALUE flag instead of a flag of its own. `default_text` is how help shows the default
    when the value says too little (None, inf). `group` is the help section, `exclusive` a key
    shared by flags that may not be given together, `repeat` collects a repeated flag in a tuple.
    """

    help: str
    unit: Unit = "text"
    flag: str | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    names: Callable[[], Iterable[str]] | None = None
    metavar: str | None = None
    default_text: str | None = None
    setting_of: str | None = None
    via: str | None = None
    group: str | None = None
    exclusive: str | None = None
    repeat: bool = False
    finite: bool = True

    def flag_for(self, field_name: str) -> str:
        return self.flag or field_name.replace("_", "-")

    def requirement(self) -> str:
        """The bounds in words: `'an integer ≥ 1'`, `'in [0, 1)'`, `'> 0'`, or `''` if none."""
        integral = self.unit in ("int", "seed")  # an integer's bounds are written in full (2147483648, not 2.14748e+09)
        low = ("(", self.gt) if self.gt is not None else ("[", self.ge) if self.ge is not None else None
        high = (")", self.lt) if self.lt is not None else ("]", self.le) if self.le is not None else None
        number = (lambda x: str(int(x))) if integral else (lambda x: f"{x:g}")
        if low and high:
            text = f"in {low[0]}{number(low[1])}, {number(high[1])}{high[0]}"
        elif low:
            text = f"{'>' if low[0] == '(' else '≥'} {number(low[1])}"
        elif high:
            text = f"{'<' if high[0] == ')' else '≤'} {number(high[1])}"
        else:
            text = ""
        if self.unit == "int":
            return f"an integer {text}".rstrip()
        return text

    def allows(self, value: Any) -> bool:
        """Whether `problem(value)` finds nothing."""
        return self.problem(value) is None

    def problem(self, value: Any) -> str | None:
        """Why `value` is not allowed (None if it is), in words: an integer unit wants an
        integer, a flag true or false; a number (each of a pair) must meet the declared bounds, be finite unless `finite` is off (a free link's
        infinite bandwidth), never NaN, and lie in its unit's physical range
        (planner.quantities). `None` passes (whether a field may be None is its type's say)."""
        if value is None:
            return None
        if self.unit in ("int", "seed") and (isinstance(value, bool) or not isinstance(value, int)):
            return f"must be {self.requirement() or 'an integer'}"
        if self.unit == "flag" and not isinstance(value, bool):
            return "must be true or false"
        if self.unit not in NUMERIC:
            return None
        numbers = value if isinstance(value, tuple) else (value,)
        if all(self._within(v) for v in numbers):
            return None
        for v in numbers:
            numeric = isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)
            if numeric and (physical := unit_problem(self.unit, v)) is not None and self._declared(v):
                return physical
        requirement = self.requirement() or "a number"
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers) and self.finite:
            requirement = "finite" + (f" and {self.requirement()}" if self.requirement() else "")
        return f"must be {requirement}"

    def _within(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
            return False
        if math.isinf(v) and self.finite:
            return False
        return self._declared(v) and unit_problem(self.unit, v) is None

    def _declared(self, v: float) -> bool:
        return not (
            (self.gt is not None and not v > self.gt)
            or (self.ge is not None and not v >= self.ge)
            or (self.lt is not None and not v < self.lt)
            or (self.le is not None and not v <= self.le)
        )


def config_field(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    help: str,
    unit: Unit = "text",
    flag: str | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
    names: Callable[[], Iterable[str]] | None = None,
    metavar: str | None = None,
    default_text: str | None = None,
    setting_of: str | None = None,
    via: str | None = None,
    group: str | None = None,
    exclusive: str | None = None,
    repeat: bool = False,
    finite: bool = True,
) -> Any:
    """`dataclasses.field(default=...)` carrying a `FieldSpec` (keyword arguments as there)."""
    spec = FieldSpec(
        help=help,
        unit=unit,
        flag=flag,
        gt=gt,
        ge=ge,
        lt=lt,
        le=le,
        choices=choices,
        names=names,
        metavar=metavar,
        default_text=default_text,
        setting_of=setting_of,
        via=via,
        group=group,
        exclusive=exclusive,
        repeat=repeat,
        finite=finite,
    )
    metadata = {METADATA_KEY: spec}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_spec(f: dataclasses.Field[Any]) -> FieldSpec | None:
    spec = f.metadata.get(METADATA_KEY)
    return spec if isinstance(spec, FieldSpec) else None


def field_specs(cls: type) -> list[tuple[dataclasses.Field[Any], FieldSpec]]:
    """The fields of a config dataclass that carry a spec, in declaration order."""
    return [(f, spec) for f in dataclasses.fields(cls) if (spec := field_spec(f)) is not None]


def json_fields(cls: type, obj: Any, where: str) -> dict[str, Any]:
    """`obj` as the keyword arguments of the config dataclass `cls`: a JSON object whose keys are
    all fields of `cls` (one line naming the unknown ones and the known ones otherwise)."""
    if not isinstance(obj, dict):
        raise ValidationError(f"{where} must be a JSON object, got {type(obj).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ValidationError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dict(obj)


def check_bounds(config: Any, where: str) -> None:
    """Raise `ValidationError` naming the first field of `config` that its declaration refuses
    (`FieldSpec.problem`, `choices`), or that is None where its type does not allow None: the library's
    check at its boundary, from the same declaration as the CLI's."""
    for f, spec in field_specs(type(config)):
        value = getattr(config, f.name)
        if value is None and "None" not in str(f.type):
            raise ValidationError(f"{where} {f.name} must be given, got None")
        if (problem := spec.problem(value)) is not None:
            raise ValidationError(f"{where} {f.name} {problem}, got {value!r}")
        # (the CLI's parser checks `choices` itself, in argparse's words)
        if (
            spec.choices is not None
            and value is not None
            and any(v not in spec.choices for v in _each(value, spec.repeat))
        ):
            raise ValidationError(f"{where} {f.name} must be one of {', '.join(spec.choices)}, got {value!r}")


def _each(value: Any, repeat: bool) -> tuple[Any, ...]:
    """The values of a field: a repeatable flag's tuple or list, else the one value."""
    return tuple(value) if repeat and isinstance(value, tuple | list) else (value,)


def field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default
