"""`none` (PipeDream, zero-order): apply the stale gradient as it is."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from executor.compensation.base import CompensationConfig, Compensator
from executor.compensation.registry import register_compensator


class NoCompensation(Compensator):
    """`none`: returns the stale gradient unchanged (PipeDream's zero-order rule)."""

    name = "none"

    def compensate(self, grad: torch.Tensor, versions: Sequence[torch.Tensor], staleness: int) -> torch.Tensor:
        return grad


@register_compensator("none")
def build(config: CompensationConfig, numel: int, dtype: torch.dtype, device: torch.device) -> Compensator:
    return NoCompensation()
