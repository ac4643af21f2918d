"""Typed field access for JSON objects, with errors that name the field's full path."""

from __future__ import annotations

from typing import Any

from planner.errors import ValidationError

_MISSING: Any = object()


def get_field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = _MISSING) -> Any:
    """Return `obj[key]` checked against `kind`.

    JSON `true` is not accepted where a number is expected, and an integral float (`3.0`) is
    accepted where an int is expected, because JSON writers differ on that.
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if key not in obj:
        if default is _MISSING:
            raise ValidationError(f"{where}.{key} is missing")
        return default
    value = obj[key]
    if isinstance(value, bool) and bool not in kinds:
        raise ValidationError(f"{where}.{key} must be {_names(kinds)}, got {value!r}")
    if int in kinds and float not in kinds and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kinds):
        raise ValidationError(f"{where}.{key} must be {_names(kinds)}, got {type(value).__name__} {value!r}")
    return value


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join("number" if k is float else k.__name__ for k in kinds)
