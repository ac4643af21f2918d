"""ER — experience replay (SPEC §8): a reservoir buffer; each step mixes stream and buffer rows.

A step trains on its new rows plus `replay_batch` rows drawn uniformly without replacement
from the buffer (default: as many as there are new rows, a 1:1 mix; fewer while the buffer is
smaller). The new rows enter the buffer by reservoir sampling after the update, so a sample is
never replayed in the step that brought it. Cost: the replayed rows enlarge the batch; nothing
else.
"""

from __future__ import annotations

import torch
from torch import nn

from executor.ocl.algorithms.base import AlgorithmConfig, AlgorithmContext, OCLAlgorithm, register_algorithm
from executor.ocl.batch import TrainBatch, append_rows
from executor.ocl.cost import ZERO_COST, StepCost
from executor.ocl.replay_buffer import ReplayBuffer

Replay = tuple[torch.Tensor, torch.Tensor, StepCost]


@register_algorithm("er")
class ExperienceReplay(OCLAlgorithm):
    def __init__(self, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        super().__init__(config, context)
        self.buffer = ReplayBuffer(config.buffer_samples, context.bytes_per_sample, context.rng, context.ledger)

    def replay_rows(self, num_new: int) -> int:
        return self.config.replay_batch if self.config.replay_batch is not None else num_new

    def observe(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        weight: torch.Tensor | None = None,
        num_new: int | None = None,
        task: int = 0,
    ) -> TrainBatch:
        num_new = x.shape[0] if num_new is None else num_new
        new_weight = None if weight is None else weight[:num_new]
        replay_x, replay_y, cost = self.select_replay(model, x[:num_new], y[:num_new], new_weight)
        x, y, weight = append_rows(x, y, weight, replay_x, replay_y)
        return TrainBatch(x, y, num_new=num_new, weight=weight, task=task, cost=cost)

    def select_replay(
        self, model: nn.Module, new_x: torch.Tensor, new_y: torch.Tensor, new_weight: torch.Tensor | None
    ) -> Replay:
        """Uniform draws from the buffer; MIR overrides this with its interference-based choice."""
        if len(self.buffer) == 0:
            return new_x[:0], new_y[:0], ZERO_COST
        replay_x, replay_y = self.buffer.sample(self.replay_rows(new_x.shape[0]))
        return replay_x, replay_y, ZERO_COST

    def after_update(self, model: nn.Module, batch: TrainBatch) -> None:
        self.buffer.add(batch.x[: batch.num_new], batch.y[: batch.num_new])
