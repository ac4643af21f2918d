"""The stream a plan is made for, and the one check of its three numbers.

`td` (the arrival interval), the decay rate `c` and the value `V_D` of a datum appear in every
plan, every strategy call and every planner; `check_stream` is the single rule all of them use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.errors import ValidationError
from planner.quantities import MAX_FACTOR, MAX_RATE_PER_S, MAX_TIME_S, MIN_TIME_S, time_problem


def check_stream(arrival_interval_s: float, decay_per_s: float, value_per_datum: float, where: str = "") -> None:
    """Raise `ValidationError` unless `td` is a positive time (planner.quantities: 1 ps to ~31
    years), `0 ≤ c ≤ MAX_RATE_PER_S` and `0 < V_D ≤ MAX_FACTOR`, all finite.

    With `where` (e.g. `"plan"`) the message names the field (`plan.decay_per_s`); without it,
    the quantity in words, as a CLI user knows it.
    """
    checks = (
        (
            "arrival_interval_s",
            "arrival interval",
            arrival_interval_s,
            arrival_interval_s > 0 and time_problem(arrival_interval_s) is None,
            f"a positive time in [{MIN_TIME_S:g} s, {MAX_TIME_S:g} s]",
        ),
        (
            "decay_per_s",
            "decay rate",
            decay_per_s,
            0 <= decay_per_s <= MAX_RATE_PER_S,
            f"≥ 0 per second (at most {MAX_RATE_PER_S:g})",
        ),
        (
            "value_per_datum",
            "value per datum",
            value_per_datum,
            0 < value_per_datum <= MAX_FACTOR,
            f"positive (at most {MAX_FACTOR:g})",
        ),
    )
    for field, words, value, ok, rule in checks:
        if not (ok and math.isfinite(value)):
            name = f"{where}.{field}" if where else words
            raise ValidationError(f"{name} must be {rule}, got {value!r}")


@dataclass(frozen=True)
class StreamSpec:
    """The stream a plan is made for: `td`, the decay rate `c` and the value `V_D` of a datum."""

    arrival_interval_s: float
    decay_per_s: float = 1.0
    value_per_datum: float = 1.0

    def __post_init__(self) -> None:
        check_stream(self.arrival_interval_s, self.decay_per_s, self.value_per_datum)
