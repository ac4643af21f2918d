"""LwF — learning without forgetting (Li & Hoiem 2017; SPEC §8): distil the previous model.

The "previous model" is a frozen copy (the teacher) taken when a new task starts (or every
`consolidate_every` trained samples on task-free streams); before the first consolidation LwF
is Vanilla. With one shared head (class-incremental), distillation covers only the classes the
teacher had seen when it was taken, so new classes are free to grow:

    loss = CE(z, y) + α · T² · KL( softmax(z_old / T) ‖ softmax(z[old classes] / T) )

`α = lwf_alpha`, `T = lwf_temperature`. Cost charged: one teacher forward of every row.
Memory: the teacher's weights ("teacher" in the ledger).

In a pipeline (executor/pipeline/stage_worker.py) the teacher is kept per stage, by whoever owns
the stage: `consolidate` (stage 0's process) decides at a datum's admission and numbers the
teacher (`generation`); the datum carries that number up, and each stage takes its own share of
the teacher (`teacher_forward`) from its current weights when the first datum of a newer
generation reaches it, then runs the datum's teacher activation through it. The consolidation
point of stage `j` is therefore that datum's forward at stage `j` — the same point in every
process that runs the stage, and no message of its own. The learner is a pipeline of one stage.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from executor.ledger import module_bytes
from executor.models.base import require_layered
from executor.ocl.algorithms.base import (
    AlgorithmConfig,
    AlgorithmContext,
    Consolidation,
    OCLAlgorithm,
    register_algorithm,
)
from executor.ocl.batch import TrainBatch, weighted_cross_entropy
from executor.ocl.cost import StepCost

Span = tuple[int, int] | None  # a stage's layers `[first, end)` of a layered model; None: the whole model


@dataclass
class StageTeacher:
    """One stage's share of the teacher: the generation it belongs to, its layers and their copy."""

    generation: int
    span: Span
    module: nn.Module


@register_algorithm("lwf")
class LearningWithoutForgetting(OCLAlgorithm):
    """`lwf`: cross-entropy plus distillation from a frozen teacher taken at each consolidation.

    Vanilla until the first consolidation; the teacher's weights are charged to the ledger as "teacher"
    (see the module docstring for the loss).
    """

    extra_passes_at = "with_forward"  # the teacher runs inside each stage's training forward

    def __init__(self, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        super().__init__(config, context)
        self.consolidation = Consolidation(config.consolidate_every)
        self.generation = 0  # teachers numbered so far (stage 0's process decides them)
        self.teachers: dict[int, StageTeacher] = {}  # per stage this process runs
        self.teacher_classes: torch.Tensor | None = None
        self.seen_classes = torch.zeros(context.num_classes, dtype=torch.bool)

    def observe(self, model: nn.Module, given: TrainBatch, batch_rows: int | None = None) -> TrainBatch:
        batch, generation = self.consolidate(given)
        if generation:
            batch.teacher_logits = self.teacher_forward(0, model, None, generation, given.x)[:, batch.teacher_classes]
        return batch

    def consolidate(self, given: TrainBatch) -> tuple[TrainBatch, int]:
        """Stage 0, at a datum's admission: take a new teacher when one is due (a new task, or
        `consolidate_every` samples, once any class was seen). Returns the batch, with the
        classes the teacher distils and its cost when there is a teacher, and the teacher's
        generation (0: none yet, plain CE)."""
        if self.consolidation.due(given.task, given.num_new) and bool(self.seen_classes.any()):
            self.generation += 1
            self.teacher_classes = self.seen_classes.nonzero().flatten().to(given.x.device)
        if not self.generation:
            return given, 0
        return replace(given, teacher_classes=self.teacher_classes, cost=StepCost(forward=given.rows)), self.generation

    def teacher_forward(
        self, stage: int, model: nn.Module, span: Span, generation: int, x: torch.Tensor
    ) -> torch.Tensor:
        """The teacher of `generation`'s stage `stage` (layers `span` of `model`) on `x`: the
        stage's teacher is first taken from the current weights if it is older."""
        held = self.teachers.get(stage)
        if held is None or held.generation < generation:
            held = self._take_teacher(stage, model, span, generation)
        with torch.no_grad():
            return held.module(x)

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
        teacher = {
            stage: {
                "generation": held.generation,
                "span": held.span,
                "weights": {k: v.clone() for k, v in held.module.state_dict().items()},
            }
            for stage, held in self.teachers.items()
        }
        return {
            **super().state_dict(),
            "consolidation": self.consolidation.state_dict(),
            "seen_classes": self.seen_classes.clone(),
            "generation": self.generation,
            "teacher": teacher or None,
            "teacher_classes": None if self.teacher_classes is None else self.teacher_classes.clone(),
        }

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        super().load_state_dict(state, model)
        self.consolidation.load_state_dict(state["consolidation"])
        self.seen_classes = state["seen_classes"].clone()
        self.generation = int(state["generation"])
        self.teacher_classes = None if state["teacher_classes"] is None else state["teacher_classes"].clone()
        for stage, saved in (state["teacher"] or {}).items():
            span = None if saved["span"] is None else tuple(saved["span"])
            # The structure and the ledger's charge from the model, then the saved weights.
            self._take_teacher(stage, model, span, int(saved["generation"])).module.load_state_dict(saved["weights"])

    @classmethod
    def step_passes(cls, config: AlgorithmConfig, batch_rows: int) -> StepCost:
        """The step and the teacher's forward of every row."""
        return StepCost.train(batch_rows) + StepCost(forward=batch_rows)

    @classmethod
    def first_extra_datum(cls, config: AlgorithmConfig, task: np.ndarray) -> int | None:
        """The first datum with a teacher: the first consolidation after datum 0."""
        return Consolidation.first_after_start(config.consolidate_every, task)

    @classmethod
    def stored_state_bytes(
        cls, config: AlgorithmConfig, model: nn.Module, num_classes: int
    ) -> tuple[dict[str, int], int]:
        parts, per_slot = super().stored_state_bytes(config, model, num_classes)
        return {**parts, "teacher": module_bytes(model)}, per_slot

    def _take_teacher(self, stage: int, model: nn.Module, span: Span, generation: int) -> StageTeacher:
        layers = model if span is None else nn.Sequential(*require_layered(model, "lwf").layers[span[0] : span[1]])
        module = copy.deepcopy(layers).eval()
        for p in module.parameters():
            p.requires_grad_(False)
        held = self.teachers[stage] = StageTeacher(generation, span, module)
        self.context.ledger.set("teacher", sum(module_bytes(t.module) for t in self.teachers.values()))
        return held
