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
from dataclasses import replace
from typing import Any

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
    """`lwf`: cross-entropy plus distillation from a frozen teacher taken at each consolidation.

    Vanilla until the first consolidation; the teacher's weights are charged to the ledger as "teacher"
    (see the module docstring for the loss).
    """

    def __init__(self, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        super().__init__(config, context)
        self.consolidation = Consolidation(config.consolidate_every)
        self.teacher: nn.Module | None = None
        self.teacher_classes: torch.Tensor | None = None
        self.seen_classes = torch.zeros(context.num_classes, dtype=torch.bool)

    def observe(self, model: nn.Module, given: TrainBatch, batch_rows: int | None = None) -> TrainBatch:
        if self.consolidation.due(given.task, given.num_new) and bool(self.seen_classes.any()):
            self._take_teacher(model)
        if self.teacher is None:
            return given
        with torch.no_grad():
            teacher_logits = self.teacher(given.x)[:, self.teacher_classes]
        return replace(
            given,
            teacher_logits=teacher_logits,
            teacher_classes=self.teacher_classes,
            cost=StepCost(forward=given.rows),
        )

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

    def state_dict(self) -> dict[str, Any]:
        teacher = None if self.teacher is None else {k: v.clone() for k, v in self.teacher.state_dict().items()}
        return {
            **super().state_dict(),
            "consolidation": self.consolidation.state_dict(),
            "seen_classes": self.seen_classes.clone(),
            "teacher": teacher,
            "teacher_classes": None if self.teacher_classes is None else self.teacher_classes.clone(),
        }

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        super().load_state_dict(state, model)
        self.consolidation.load_state_dict(state["consolidation"])
        self.seen_classes = state["seen_classes"].clone()
        if state["teacher"] is not None:
            self._take_teacher(model)  # the model's structure and the ledger's charge, then the saved weights
            assert self.teacher is not None
            self.teacher.load_state_dict(state["teacher"])
            self.teacher_classes = state["teacher_classes"].clone()

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
