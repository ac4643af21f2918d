"""`TrainBatch`: what one training step trains on, as an OCL algorithm assembled it.

Rows `[0, num_new)` are fresh stream data chosen by the framework; rows after them were added
by the framework (Camel's representative samples) or the algorithm (ER/MIR replay). `weight`
scales each row's loss (Camel's coreset weights); `None` means uniform. `cost` is the work the
algorithm did beyond the step's own forward and backward of every row (MIR's virtual step,
LwF's teacher forward, MAS's importance pass), so that virtual time and FLOPs can charge it.
A batch may hold no fresh row (`num_new = 0`): aL-SAR trains on memory only, and a compute
budget may buy a further step before the next arrival. `frozen_layers` is set by the learner
when it applies the batch: layers `0..frozen_layers-1` took no backward (aL-SAR freezing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from executor.ocl.cost import ZERO_COST, StepCost


@dataclass
class TrainBatch:
    x: torch.Tensor
    y: torch.Tensor
    num_new: int
    weight: torch.Tensor | None = None
    task: int = 0
    teacher_logits: torch.Tensor | None = None
    teacher_classes: torch.Tensor | None = None
    cost: StepCost = ZERO_COST
    frozen_layers: int = 0

    def __post_init__(self) -> None:
        rows = self.x.shape[0]
        if self.y.shape != (rows,):
            raise ValueError(f"batch has {rows} inputs but labels of shape {tuple(self.y.shape)}")
        if not 0 <= self.num_new <= rows:
            raise ValueError(f"num_new must lie in [0, {rows}], got {self.num_new}")
        if self.weight is not None and self.weight.shape != (rows,):
            raise ValueError(f"batch has {rows} rows but weights of shape {tuple(self.weight.shape)}")

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    def step_cost(self) -> StepCost:
        """The whole step: forward and backward of every row plus the algorithm's extra work."""
        return StepCost.train(self.rows) + self.cost


def weighted_cross_entropy(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean cross-entropy, or `Σ wᵢ ℓᵢ / Σ wᵢ` with per-row weights."""
    if weight is None:
        return F.cross_entropy(logits, y)
    per_row = F.cross_entropy(logits, y, reduction="none")
    return (per_row * weight).sum() / weight.sum()


def append_rows(
    x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, extra_x: torch.Tensor, extra_y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Rows `extra` after `(x, y)`; extra rows get weight 1 when the batch is weighted."""
    if extra_x.shape[0] == 0:
        return x, y, weight
    x = torch.cat([x, extra_x.to(x.device, x.dtype)])
    y = torch.cat([y, extra_y.to(y.device)])
    if weight is not None:
        weight = torch.cat([weight, torch.ones(extra_x.shape[0], dtype=weight.dtype, device=weight.device)])
    return x, y, weight
