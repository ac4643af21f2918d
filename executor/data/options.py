"""Options given to a registered builder as `KEY=VALUE` text, checked against its signature.

`--dataset-option`, `--stream-option` (and any registry built the same way) pass options
whose values the CLI could only guess the type of (`tasks=5` → 5, `tasks=abc` → 'abc'). Before
the builder runs, `checked_options` refuses an option it does not take and a value of the
wrong kind for the parameter (from its type hint, else its default), with one line that names
both; an integer for a float is widened, text stays text for a text parameter. Numbers must be
finite and within what any count or scale can be (planner.quantities).
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from planner.errors import FerretError
from planner.quantities import MAX_COUNT, MAX_FACTOR

_NOUNS = {bool: "true or false", int: "an integer", float: "a number", str: "text", Path: "a path", tuple: "a list"}


def checked_options(
    kind: str, name: str, builder: Callable[..., Any], skip: int, options: Mapping[str, Any]
) -> dict[str, Any]:
    """`options` for `builder` (whose first `skip` parameters are not options), each checked."""
    params = list(inspect.signature(builder).parameters.values())[skip:]
    by_name = {p.name: p for p in params}
    unknown = sorted(set(options) - set(by_name))
    if unknown:
        takes = ", ".join(by_name) or "no options"
        raise FerretError(f"{kind} {name!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}")
    try:
        hints = typing.get_type_hints(builder)
    except (NameError, TypeError):  # a hint that does not resolve: fall back to the defaults
        hints = {}
    out = {}
    for key, value in options.items():
        kinds = _kinds(hints.get(key), by_name[key].default)
        out[key] = _coerce(f"{kind} {name!r} option {key}", value, kinds)
    return out


def _kinds(hint: Any, default: Any) -> tuple[type, ...]:
    """The plain types a parameter takes (empty: anything)."""
    if hint is None:
        return () if default is inspect.Parameter.empty or default is None else (type(default),)
    members = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    kinds = []
    for member in members:
        origin = typing.get_origin(member) or member
        if origin is type(None):
            continue
        if not isinstance(origin, type) or origin is object:
            return ()
        kinds.append(origin)
    return tuple(kinds)


def _coerce(where: str, value: Any, kinds: tuple[type, ...]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise FerretError(f"{where} must be finite, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_COUNT:
        raise FerretError(f"{where} is beyond {MAX_COUNT:.3g}, got {value!r}")
    if isinstance(value, float) and abs(value) > MAX_FACTOR:
        raise FerretError(f"{where} is beyond {MAX_FACTOR:g} in magnitude, got {value!r}")
    if not kinds:
        return value
    if isinstance(value, bool):
        if bool in kinds:
            return value
    elif isinstance(value, int) and int in kinds:
        return value
    elif isinstance(value, int | float) and float in kinds:
        return float(value)
    if isinstance(value, str) and any(k in kinds for k in (str, Path, tuple)):
        return value
    if not isinstance(value, int | float) and isinstance(value, kinds):  # a library caller's tuple, path, ...
        return value
    if str in kinds:
        return str(value)
    nouns = " or ".join(dict.fromkeys(_NOUNS.get(k, k.__name__) for k in kinds))
    raise FerretError(f"{where} must be {nouns}, got {value!r}")
