"""Physical bounds of the numbers ferret accepts, by what they measure (one place).

Every size, time, rate, seed and device index that enters the tool — from a flag, a profile,
a plan or a sim config — is checked against the bound of what it measures, so that no later
sum or product can overflow an int64 or reach infinity:

- a size is at most `MAX_BYTES` (1 PiB), and so is a profile's total (the planner then checks
  that its worst (F4) sum stays below 2**62: planner.limits.check_plannable);
- a non-zero time is at least `MIN_TIME_S` (1 ps: anything shorter is a unit mistake, and its
  reciprocal would overflow the planner's worker count) and at most `MAX_TIME_S` (~31 years);
- a seed is a 32-bit unsigned integer (what NumPy, torch and Python all take);
- a device index is below `MAX_DEVICES`, a plan has at most `MAX_WORKERS` workers;
- a non-zero FLOP count lies in [1, `MAX_FLOPS`].

`unit_problem(unit, value)` says why a value of a config-field unit (planner.config_field) is
out of its physical range; `FieldSpec.allows` and the CLI's unit parsers both call it.
"""

from __future__ import annotations

import math
from typing import Any

from planner.errors import ValidationError

MAX_BYTES = 2**50
MIN_TIME_S = 1e-12
MAX_TIME_S = 1e9
MAX_SEED = 2**32 - 1
MAX_DEVICES = 4096
MAX_HOST_CORES = 2**16  # cores of one host that devices share (SimConfig.host_cores)
MAX_WORKERS = 4096
MAX_LAYERS = 4096
MAX_BANDWIDTH_BPS = MAX_BYTES * 1e3  # ~1 EiB/s; faster is a free link (inf)
MAX_RATE_PER_S = 1e12  # a decay faster than one per picosecond has no meaning
MAX_FACTOR = 1e15  # a dimensionless number (a ratio, a scale, a value) far from float's edges
MAX_COUNT = 2**53  # an integer count: exact as a float, far below int64
MAX_FLOPS = 1e21  # FLOPs of one sample's training: a zettaFLOP is hours of the largest machine
MAX_STREAMS = 64  # CUDA streams of one rank (a GPU runs at most 128 kernels at once)


def size_problem(value: float) -> str | None:
    """Why `value` bytes is no size (None if it is one): negative, fractional below 1, or above 1 PiB."""
    if not math.isfinite(value) or value < 0:
        return "must be a size ≥ 0"
    if value > MAX_BYTES:
        return f"is beyond {MAX_BYTES:.3g} bytes (1 PiB), more than any device holds"
    if 0 < value < 1:
        return "rounds to 0 bytes"
    return None


def time_problem(value: float) -> str | None:
    """Why `value` seconds is no time (None if it is one): not finite, or a magnitude outside
    [1 ps, ~31 years] other than 0."""
    if not math.isfinite(value):
        return "must be a finite time"
    if value != 0 and abs(value) < MIN_TIME_S:
        return f"is below {MIN_TIME_S:g} s (1 ps); check the unit"
    if abs(value) > MAX_TIME_S:
        return f"is beyond {MAX_TIME_S:g} s (~31 years)"
    return None


# What each config-field unit (planner.config_field.Unit) may hold, whatever the field's own
# bounds: the physical meaning of the unit. `FieldSpec.allows` and the CLI's unit parsers use it.
def unit_problem(unit: str, value: float) -> str | None:
    if unit == "bytes":
        return size_problem(value)
    if unit == "seconds":
        return time_problem(value)
    if unit == "rate" and value > MAX_RATE_PER_S:
        return f"is beyond {MAX_RATE_PER_S:g} per second"
    if unit == "bandwidth" and math.isfinite(value) and not 1 <= value <= MAX_BANDWIDTH_BPS:
        return "must be between 1 B/s and 1 EiB/s"
    if unit == "flops" and math.isfinite(value) and value != 0 and not 1 <= abs(value) <= MAX_FLOPS:
        return f"must be 0 or a FLOP count in [1, {MAX_FLOPS:g}]"
    if unit == "seed" and not 0 <= value <= MAX_SEED:
        return f"must be a seed in [0, {MAX_SEED}]"
    if unit == "int" and abs(value) > MAX_COUNT:
        return f"is beyond {MAX_COUNT:.3g}"
    if unit in ("float", "pair") and math.isfinite(value) and abs(value) > MAX_FACTOR:
        return f"is beyond {MAX_FACTOR:g} in magnitude"
    return None


def check_size(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{where} must be an integer number of bytes, got {value!r}")
    if (problem := size_problem(value)) is not None:
        raise ValidationError(f"{where} {problem}, got {value!r}")


def check_time(value: float, where: str, *, positive: bool = False) -> None:
    """Refuse a value that is no time ≥ 0 (with `positive`, > 0), naming `where`."""
    problem = time_problem(value)
    if problem is None and (value < 0 or (positive and value == 0)):
        problem = "must be a positive time" if positive else "must be a time ≥ 0"
    if problem is not None:
        raise ValidationError(f"{where} {problem}, got {value!r}")
