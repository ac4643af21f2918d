"""`fisher` (SAPipe-style single step): one application of A from the stash straight to the
current weights, with a fixed λ (`CompensationConfig.lambda0`), whatever the staleness.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from executor.compensation.base import CompensationConfig, Compensator, fisher_approx_
from executor.compensation.registry import register_compensator


class Fisher(Compensator):
    """`fisher`: one Fisher step (F9) from the stash to the current weights with a fixed λ, any staleness."""

    name = "fisher"

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def compensate(self, grad: torch.Tensor, versions: Sequence[torch.Tensor], staleness: int) -> torch.Tensor:
        return fisher_approx_(grad, versions[-1], versions[0], self.lam)


@register_compensator("fisher")
def build(config: CompensationConfig, numel: int, dtype: torch.dtype, device: torch.device) -> Compensator:
    return Fisher(config.lambda0)
