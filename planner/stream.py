"""The stream a plan is made for, and the one check of its three numbers.

`td` (the arrival interval), the decay rate `c` and the value `V_D` of a datum appear in every
plan, every strategy call and every planner; `check_stream` is the single rule all of them use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.errors import ValidationError


def check_stream(arrival_interval_s: float, decay_per_s: float, value_per_datum: float, where: str = "") -> None:
    """Raise `ValidationError` unless `td > 0`, `c ≥ 0` and `V_D > 0`, all finite.

    With `where` (e.g. `"plan"`) the message names the field (`plan.decay_per_s`); without it,
    the quantity in words, as a CLI user knows it.
    """
    checks = (
        ("arrival_interval_s", "arrival interval", arrival_interval_s, arrival_interval_s > 0, "a positive time"),
        ("decay_per_s", "decay rate", decay_per_s, decay_per_s >= 0, "≥ 0 per second"),
        ("value_per_datum", "value per datum", value_per_datum, value_per_datum > 0, "positive"),
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
