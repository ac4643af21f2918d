"""A fitted parameter with its uncertainty, and how it was obtained.

`stderr` is one standard error from the fit's Jacobian (scaled by the residual spread), 0 when
the data fit exactly, and None when the value was not fitted — because the traces cannot tell
it apart (`how` says why) or because it was fixed by the user. A fitted time below 1 ps is 0
and a bandwidth beyond ~1 EiB/s is a free link (inf): no trace resolves either, and a time is 0
or at least 1 ps, a bandwidth at most that or free, wherever ferret reads one (planner.quantities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from planner.quantities import MAX_BANDWIDTH_BPS, MIN_TIME_S

MAD_TO_SIGMA = 1.4826  # σ of Gaussian data = 1.4826 · its median absolute deviation
MEDIAN_EFFICIENCY = 1.2533  # se of a median = 1.2533 · σ / √n for Gaussian data


@dataclass(frozen=True)
class Fitted:
    """One calibrated scalar: its `name`, `value` in `unit`, standard error and how it was obtained.

    `stderr` is None when the value was not fitted (`fitted` is then False and `how` says why);
    `to_json` writes a non-finite value as null.
    """

    name: str
    value: float
    stderr: float | None
    unit: str
    how: str = "fitted"

    def __post_init__(self) -> None:
        if self.unit == "s" and abs(self.value) < MIN_TIME_S:
            object.__setattr__(self, "value", 0.0)
        if self.unit == "B/s" and self.value > MAX_BANDWIDTH_BPS:
            object.__setattr__(self, "value", math.inf)

    @property
    def fitted(self) -> bool:
        return self.stderr is not None

    def to_json(self) -> dict[str, Any]:
        value = self.value if math.isfinite(self.value) else None
        return {"name": self.name, "value": value, "stderr": self.stderr, "unit": self.unit, "how": self.how}


def fixed(name: str, value: float, unit: str, why: str) -> Fitted:
    return Fitted(name, value, None, unit, f"not fitted: {why}")
