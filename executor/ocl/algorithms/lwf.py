"""LwF — learning without forgetting (Li & Hoiem 2017; SPEC §8): distil the previous model.

The "previous model" is a frozen copy (the teacher) taken when a new task starts (or every
`consolidate_every` trained samples on task-free streams); before the first consolidation LwF
is Vanilla. With one shared head (class-incremental), distillation covers only the classes the
teacher had seen when it was taken, so new classes are free to grow:

    loss = CE(z, y) + α · T² · KL( softmax(z_old / T) ‖ softmax(z[old classes] / T) )

`α = lwf_alpha`, `T = lwf_temperature`. Cost charged: one teacher forward of every row.
Memory: the teacher's weights ("teacher" in the ledger).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from executor.ledger import module_bytes
from executor.ocl.algorithms.base import (
    AlgorithmConfig,
    AlgorithmContext,
    Consolidation,
    OCLAlgorithm,
    register_algorithm,
)
from executor.ocl.batch import TrainBatch, weighted_cross_entropy
from executor.ocl.cost import StepCost


@register_algorithm("lwf")
class LearningWithoutForgetting(OCLAlgorithm):
    def __init__(self, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        super().__init__(config, context)
        self.consolidation = Consolidation(config.consolidate_every)
        self.teacher: nn.Module | None = None
        self.teacher_classes: torch.Tensor | None = None
        self.seen_classes = torch.zeros(context.num_classes, dtype=torch.bool)

    def observe(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        weight: torch.Tensor | None = None,
        num_new: int | None = None,
        task: int = 0,
        batch_rows: int | None = None,
    ) -> TrainBatch:
        num_new = x.shape[0] if num_new is None else num_new
        if self.consolidation.due(task, num_new) and bool(self.seen_classes.any()):
            self._take_teacher(model)
        batch = TrainBatch(x, y, num_new=num_new, weight=weight, task=task)
        if self.teacher is not None:
            with torch.no_grad():
                batch.teacher_logits = self.teacher(x)[:, self.teacher_classes]
            batch.teacher_classes = self.teacher_classes
            batch.cost = StepCost(forward=x.shape[0])
        return batch

    def loss(self, logits: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
        loss = weighted_cross_entropy(logits, batch.y, batch.weight)
        if batch.teacher_logits is None or self.config.lwf_alpha == 0:
            return loss
        t = self.config.lwf_temperature
        student = F.log_softmax(logits[:, batch.teacher_classes] / t, dim=1)
        teacher = F.softmax(batch.teacher_logits / t, dim=1)
        distill = F.kl_div(student, teacher, reduction="batchmean")
        return loss + self.config.lwf_alpha * t * t * distill

    def after_update(self, model: nn.Module, batch: TrainBatch) -> None:
        self.seen_classes[batch.y.cpu()] = True

    @classmethod
    def step_passes(cls, config: AlgorithmConfig, batch_rows: int) -> StepCost:
        """The step and the teacher's forward of every row."""
        return StepCost.train(batch_rows) + StepCost(forward=batch_rows)

    @classmethod
    def stored_state_bytes(
        cls, config: AlgorithmConfig, model: nn.Module, num_classes: int
    ) -> tuple[dict[str, int], int]:
        parts, per_slot = super().stored_state_bytes(config, model, num_classes)
        return {**parts, "teacher": module_bytes(model)}, per_slot

    def _take_teacher(self, model: nn.Module) -> None:
        self.teacher = copy.deepcopy(model).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher_classes = self.seen_classes.nonzero().flatten().to(next(model.parameters()).device)
        self.context.ledger.set("teacher", module_bytes(self.teacher))
