"""Human units at the CLI edge: sizes (`64MiB`), times (`2ms`), rates (`1/s`), FLOPs (`2.5G`).

Inside the code everything is seconds and bytes. Each parser raises `ValueError` with a
message that says what was expected; `cli_type` turns a parser into an argparse type.
`UNIT_PARSERS` maps the unit a config field names (planner.config_field) to its parser. Every
parser also refuses a value outside the physical range of what it measures
(planner.quantities: a size above 1 PiB or rounding to 0 bytes, a time below 1 ps, a seed
outside 32 bits, ...), so a flag cannot let an overflowing or vanishing number in.

Units: sizes B, KiB, MiB, GiB, TiB (binary), KB, MB, GB, TB (decimal), K, M, G (binary); times
ns, us (µs), ms, s, min, h; rates N/s, N/ms, N/us (per second when bare).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from planner.quantities import MAX_FACTOR, unit_problem

T = TypeVar("T")

_SIZE_UNITS: dict[str, float] = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
}
_FLOP_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-zµ]*)\s*$")


def _split(text: str, what: str, example: str) -> tuple[float, str]:
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"invalid {what} {text!r} (expected a number with a unit, e.g. {example})")
    return float(match.group(1)), match.group(2)


def _scaled(text: str, what: str, example: str, scales: dict[str, float], hint: str) -> float:
    """A number with a unit from `scales`, in base units; finite, any sign."""
    value, unit = _split(text, what, example)
    scale = scales.get(unit if unit == "µs" else unit.lower())
    if scale is None:
        raise ValueError(f"invalid {what} {text!r}: unknown unit {unit!r} (use {hint})")
    if not math.isfinite(value * scale):
        raise ValueError(f"invalid {what} {text!r}: must be finite")
    return value * scale


def _size(text: str) -> float:
    return _scaled(text, "size", "64MiB", _SIZE_UNITS, "B, KiB, MiB, GiB, KB, MB, GB")


def _physical(unit: str, value: float, what: str, text: str) -> None:
    if (problem := unit_problem(unit, value)) is not None:
        raise ValueError(f"invalid {what} {text!r}: {problem}")


def parse_budget(text: str) -> str | int:
    """A memory budget: `'min'` (the smallest feasible footprint, M−), `'max'` (unconstrained,
    M+) or a size in bytes (`ValueError` otherwise)."""
    word = text.strip().lower()
    if word in ("min", "max"):
        return word
    return parse_bytes(text)


def parse_bytes(text: str) -> int:
    """`'64MiB'` → 67108864. Binary (KiB) and decimal (KB) units; a bare number is bytes."""
    if _size(text) <= 0:
        raise ValueError(f"invalid size {text!r}: must be positive")
    return parse_size(text)


def parse_size(text: str) -> int:
    """A size ≥ 0 in whole bytes (`parse_bytes` without its positivity)."""
    size = _size(text)
    _physical("bytes", size, "size", text)
    return round(size)


def parse_seconds(text: str) -> float:
    """`'2ms'` → 0.002. Units ns, us (µs), ms, s, min, h; a bare number is seconds."""
    seconds = parse_time(text)
    if seconds <= 0:
        raise ValueError(f"invalid time {text!r}: must be positive")
    return seconds


def parse_time(text: str) -> float:
    """A time of any sign (`parse_seconds` without its positivity: the caller checks the bounds)."""
    seconds = _scaled(text, "time", "2ms", _TIME_UNITS, "ns, us, ms, s, min, h")
    _physical("seconds", seconds, "time", text)
    return seconds


def parse_bandwidth(text: str) -> float:
    """`10GiB` or `10GiB/s` → bytes per second."""
    bandwidth = _size(text.strip().removesuffix("/s"))
    _physical("bandwidth", bandwidth, "bandwidth", text)
    return bandwidth


def parse_flop_count(text: str) -> float:
    """A FLOP count: `'2.5G'`, `'2.5GFLOP'`, `'3e9'` → 2.5e9, 2.5e9, 3e9 (decimal prefixes k M G T P);
    any sign (the caller checks the bounds)."""
    value, unit = _split(text, "FLOP count", "2.5GFLOP")
    scale = _FLOP_UNITS.get(unit.lower().removesuffix("flops").removesuffix("flop"))
    if scale is None:
        raise ValueError(f"invalid FLOP count {text!r}: unknown unit {unit!r} (use e.g. 250M, 2.5G or 2.5GFLOP)")
    if not math.isfinite(value * scale):
        raise ValueError(f"invalid FLOP count {text!r}: must be finite")
    return value * scale


def parse_rate(text: str) -> float:
    """A decay rate per second: `'1/s'`, `'0.5'`, `'2/ms'`, `'0'` (no decay)."""
    stripped = text.strip()
    if "/" in stripped:
        num, _, per = stripped.partition("/")
        try:
            value = float(num)
        except ValueError:
            raise ValueError(f"invalid rate {text!r} (expected e.g. 1/s or 0.5)") from None
        per_unit = per.strip() or "s"
        period = _TIME_UNITS.get(per_unit if per_unit == "µs" else per_unit.lower())
        if period is None:
            raise ValueError(f"invalid rate {text!r}: unknown time unit {per_unit!r}")
        value /= period
    else:
        try:
            value = float(stripped)
        except ValueError:
            raise ValueError(f"invalid rate {text!r} (expected e.g. 1/s or 0.5)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"invalid rate {text!r}: must be ≥ 0")
    _physical("rate", value, "rate", text)
    return value


@dataclass(frozen=True)
class SizeGrid:
    """Sizes of a sweep, counted before they are made: `list(grid)` makes them, `len(grid)`
    only counts them, so a caller can refuse a grid of a billion points without building it."""

    start: int
    stop: int
    factor: float | None = None  # geometric: start, start·factor, ... ≤ stop
    step: int | None = None  # arithmetic: start, start + step, ... ≤ stop
    values: tuple[int, ...] = ()  # an explicit list

    def __len__(self) -> int:
        if self.factor is not None:
            return math.floor(math.log(self.stop * (1 + 1e-12) / self.start) / math.log(self.factor)) + 1
        if self.step is not None:
            return (self.stop - self.start) // self.step + 1
        return len(self.values)

    def __iter__(self) -> Any:
        if self.factor is not None:
            return iter(dict.fromkeys(round(self.start * self.factor**k) for k in range(len(self))))
        if self.step is not None:
            return iter(range(self.start, self.stop + 1, self.step))
        return iter(self.values)


def parse_size_range(text: str) -> SizeGrid:
    """Budgets for a sweep: `'4MiB:512MiB:x2'` (geometric), `'1MiB:8MiB:+1MiB'`, or `'a,b,c'`."""
    if "," in text:
        return SizeGrid(0, 0, values=tuple(parse_bytes(part) for part in text.split(",") if part.strip()))
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"invalid size range {text!r} (expected START:STOP:xFACTOR, START:STOP:+STEP or a,b,c)")
    start, stop = parse_bytes(parts[0]), parse_bytes(parts[1])
    step = parts[2].strip()
    if stop < start:
        raise ValueError(f"invalid size range {text!r}: stop is below start")
    if step.startswith("x"):
        factor = parse_number(step[1:])
        if not factor > 1:
            raise ValueError(f"invalid size range {text!r}: factor must be > 1")
        return SizeGrid(start, stop, factor=factor)
    if step.startswith("+"):
        return SizeGrid(start, stop, step=parse_bytes(step[1:]))
    raise ValueError(f"invalid size range {text!r}: step must be xFACTOR or +SIZE")


def format_bytes(n: float) -> str:
    if n is None or not math.isfinite(n):
        return "∞"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def format_seconds(t: float) -> str:
    if t is None or not math.isfinite(t):
        return "∞"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(t) >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def int_at_least(minimum: int, what: str = "count") -> Callable[[str], int]:
    """A parser of integers `≥ minimum` whose errors say what was expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"invalid {what} {text!r} (expected an integer ≥ {minimum})") from None
        if value < minimum:
            raise ValueError(f"invalid {what} {text!r}: must be ≥ {minimum}")
        _physical("int", value, what, text)
        return value

    return parse


def float_at_least(minimum: float, inclusive: bool = True) -> Callable[[str], float]:
    """A parser of finite numbers `≥ minimum` (or `> minimum`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"invalid number {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise ValueError(f"invalid number {text!r}: must be {'≥' if inclusive else '>'} {minimum:g}")
        _physical("float", value, "number", text)
        return value

    return parse


def _whole(text: str, what: str, unit: str) -> int:
    """An integer within its unit's physical range (planner.quantities)."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"invalid {what} {text!r} (expected a whole number)") from None
    _physical(unit, value, what, text)
    return value


def parse_integer(text: str) -> int:
    return _whole(text, "integer", "int")


def parse_seed(text: str) -> int:
    """A seed: an integer in [0, 2**32 - 1], what NumPy, torch and Python's random all take."""
    return _whole(text, "seed", "seed")


def parse_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"invalid number {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"invalid number {text!r}: must be finite")
    if abs(value) > MAX_FACTOR:
        raise ValueError(f"invalid number {text!r}: beyond {MAX_FACTOR:g} in magnitude")
    return value


def parse_pair(text: str) -> tuple[float, float]:
    """`'0.9,0.999'` → (0.9, 0.999)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(f"invalid pair {text!r} (expected two numbers a,b, e.g. 0.9,0.999)")
    return parse_number(parts[0]), parse_number(parts[1])


# The parser of each unit a config field may name (planner.config_field.Unit). Bounds are the
# field's, checked after parsing; what a unit expects is said in `UNIT_NOUNS`.
UNIT_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": parse_integer,
    "seed": parse_seed,
    "float": parse_number,
    "bytes": parse_size,
    "seconds": parse_time,
    "rate": parse_rate,
    "bandwidth": parse_bandwidth,
    "flops": parse_flop_count,
    "pair": parse_pair,
    "text": str,
    "path": Path,
}
UNIT_NOUNS = {
    "int": "an integer",
    "seed": "a seed (an integer in [0, 2**32 - 1])",
    "float": "a number",
    "bytes": "a size (e.g. 64MiB)",
    "seconds": "a time (e.g. 2ms)",
    "rate": "a rate (e.g. 1/s)",
    "bandwidth": "a bandwidth (e.g. 10GiB/s)",
    "flops": "a FLOP count (e.g. 250M)",
    "pair": "two numbers a,b",
    "text": "text",
    "path": "a path",
}


parse_positive_int = int_at_least(1)
parse_non_negative_int = int_at_least(0)
parse_positive_float = float_at_least(0.0, inclusive=False)
parse_non_negative_float = float_at_least(0.0, inclusive=True)


def parse_key_value(text: str) -> tuple[str, Any]:
    """`tasks=5` → ("tasks", 5); values become int, float, bool or stay text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"invalid option {text!r} (expected KEY=VALUE, e.g. tasks=5)")
    raw = raw.strip()
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
    return key.strip().replace("-", "_"), value


def cli_type(parser: Callable[[str], T]) -> Callable[[str], T]:
    """Wrap a parser so argparse reports its message as a usage error."""

    def parse(text: str) -> T:
        try:
            return parser(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = parser.__name__
    return parse
