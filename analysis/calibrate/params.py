"""A fitted parameter with its uncertainty, and how it was obtained.

`stderr` is one standard error from the fit's Jacobian (scaled by the residual spread), 0 when
the data fit exactly, and None when the value was not fitted — because the traces cannot tell
it apart (`how` says why) or because it was fixed by the user.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fitted:
    name: str
    value: float
    stderr: float | None
    unit: str
    how: str = "fitted"

    @property
    def fitted(self) -> bool:
        return self.stderr is not None

    def to_json(self) -> dict[str, Any]:
        value = self.value if math.isfinite(self.value) else None
        return {"name": self.name, "value": value, "stderr": self.stderr, "unit": self.unit, "how": self.how}


def fixed(name: str, value: float, unit: str, why: str) -> Fitted:
    return Fitted(name, value, None, unit, f"not fitted: {why}")
