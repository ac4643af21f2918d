"""`step-aware` (Hardy et al. 2017; Jiang et al. 2017): scale a gradient of staleness τ by 1/(τ+1).

Scaling the gradient scales the SGD step exactly; under Adam it only changes the moments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from executor.compensation.base import CompensationConfig, Compensator
from executor.compensation.registry import register_compensator


class StepAware(Compensator):
    """`step-aware`: divides a gradient of staleness τ by τ + 1, in place."""

    name = "step-aware"

    def compensate(self, grad: torch.Tensor, versions: Sequence[torch.Tensor], staleness: int) -> torch.Tensor:
        return grad.div_(staleness + 1)


@register_compensator("step-aware")
def build(config: CompensationConfig, numel: int, dtype: torch.dtype, device: torch.device) -> Compensator:
    return StepAware()
