"""aL-SAR (Budgeted OCL, ICLR 2025; SPEC §10): similarity-aware retrieval + adaptive layer freezing.

A step trains on rows drawn from the replay memory only: the step's new rows enter the
(class-balanced) memory first, then the sampler (`--sampler`, default `similarity-aware`,
SPEC §10.3) draws the batch — so a new sample is trained on only if it is drawn. Rows the
framework adds beyond the new ones (Camel's) stay in the batch ahead of the draws. The batch
holds as many draws as fill it to `batch_rows` when the caller fixes the step's size (a
compute-budgeted run), else as many as an ER step would train on (`num_new + replay_batch`).
Adaptive layer freezing (`--freezing`, default `adaptive`, SPEC §10.2) is the base class's,
which every algorithm can switch on; the learner makes its saving real by back-propagating only
into the unfrozen suffix.
"""

from __future__ import annotations

import torch
from torch import nn

from executor.ocl.algorithms.base import register_algorithm
from executor.ocl.algorithms.er import ExperienceReplay
from executor.ocl.batch import TrainBatch, append_rows


@register_algorithm("alsar")
class ALSAR(ExperienceReplay):
    default_sampler = "similarity-aware"
    default_freezing = "adaptive"
    memory_policy = "class-balanced"
    memory_first = True

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
        self.remember(x[:num_new], y[:num_new])
        given = x.shape[0] - num_new
        k = max(0, batch_rows - given) if batch_rows is not None else num_new + self.replay_rows(0, num_new, None)
        slots, cost = self.draw(k)
        extra_weight = None if weight is None else weight[num_new:]
        drawn_x, drawn_y = self.buffer.get(slots) if len(slots) else (x[:0], y[:0])
        x, y, weight = append_rows(x[num_new:], y[num_new:], extra_weight, drawn_x, drawn_y)
        return TrainBatch(x, y, num_new=0, weight=weight, task=task, cost=cost)

    def after_update(self, model: nn.Module, batch: TrainBatch) -> None:
        """The new rows entered the memory before the step."""
