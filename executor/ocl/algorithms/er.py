"""ER — experience replay (SPEC §8): a replay memory; each step mixes stream and memory rows.

A step trains on its given rows plus replayed rows drawn from a reservoir memory by the run's
sampler (`executor.ocl.samplers`, `--sampler`, default `uniform`): as many as
`replay_batch` (default: as many as there are new rows, a 1:1 mix; fewer while the memory is
smaller), or, when the caller fixes the step's size (`batch_rows`, a compute-budgeted run), as
many as fill the step to that size. The new rows enter the memory after the update, so a
sample is never replayed in the step that brought it. Cost: the replayed rows enlarge the
batch; a sampler's own arithmetic is charged in FLOPs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn

from executor.ocl.algorithms.base import AlgorithmConfig, AlgorithmContext, OCLAlgorithm, register_algorithm
from executor.ocl.batch import TrainBatch, append_rows
from executor.ocl.cost import ZERO_COST, StepCost
from executor.ocl.replay_buffer import ReplayBuffer
from executor.ocl.samplers import SAMPLERS, ReplaySampler, SamplerContext, build_sampler

Replay = tuple[torch.Tensor, torch.Tensor, StepCost]


@register_algorithm("er")
class ExperienceReplay(OCLAlgorithm):
    """`er`: trains each step on its rows plus rows replayed from a reservoir memory.

    See the module docstring. The memory's bytes are charged to the ledger; new rows enter it only after
    the update.
    """

    default_sampler = "uniform"
    memory_policy = "reservoir"
    replay_memory = True
    sampler: ReplaySampler

    def __init__(self, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        super().__init__(config, context)
        self.buffer = ReplayBuffer(
            config.buffer_samples, context.bytes_per_sample, context.rng, context.ledger, policy=self.memory_policy
        )
        self.sampler = build_sampler(
            config.sampler or self.default_sampler,
            self.buffer,
            SamplerContext(context.num_classes, context.rng, config.sampler_temperature, context.ledger),
        )

    def replay_rows(self, given: int, num_new: int, batch_rows: int | None) -> int:
        if batch_rows is not None:
            return max(0, batch_rows - given)
        return self.config.replay_batch if self.config.replay_batch is not None else num_new

    def observe(self, model: nn.Module, given: TrainBatch, batch_rows: int | None = None) -> TrainBatch:
        x, y, weight, num_new = given.x, given.y, given.weight, given.num_new
        k = self.replay_rows(x.shape[0], num_new, batch_rows)
        new_weight = None if weight is None else weight[:num_new]
        return self.with_replay(given, self.select_replay(model, x[:num_new], y[:num_new], new_weight, k))

    def with_replay(self, given: TrainBatch, replay: Replay) -> TrainBatch:
        """The step's batch: `given` with the replayed rows appended (they weigh 1), their cost."""
        replay_x, replay_y, cost = replay
        x, y, weight = append_rows(given.x, given.y, given.weight, replay_x, replay_y)
        return TrainBatch(x, y, num_new=given.num_new, weight=weight, task=given.task, cost=cost)

    def draw(self, k: int) -> tuple[np.ndarray, StepCost]:
        """`k` memory slots from the sampler, and the sampler's arithmetic."""
        flops = self.sampler.draw_flops(k)
        return self.sampler.draw(k), StepCost(flops=flops) if flops else ZERO_COST

    def select_replay(
        self, model: nn.Module, new_x: torch.Tensor, new_y: torch.Tensor, new_weight: torch.Tensor | None, k: int
    ) -> Replay:
        """Draws by the sampler; MIR overrides this with its interference-based choice."""
        if len(self.buffer) == 0 or k == 0:
            return new_x[:0], new_y[:0], ZERO_COST
        slots, cost = self.draw(k)
        replay_x, replay_y = self.buffer.get(slots)
        return replay_x, replay_y, cost

    def after_update(self, model: nn.Module, batch: TrainBatch) -> None:
        self.remember(batch.x[: batch.num_new], batch.y[: batch.num_new])

    def remember(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.sampler.on_write(self.buffer.add(x, y))

    def training_forward(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        return self.sampler.capture(model)

    def after_backward(self, model: nn.Module, batch: TrainBatch) -> None:
        super().after_backward(model, batch)
        flops = self.sampler.after_backward(batch.y.cpu().numpy())
        if flops:
            batch.cost = batch.cost + StepCost(flops=flops)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.state_dict(), "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        super().load_state_dict(state, model)
        self.buffer.load_state_dict(state["buffer"])
        self.sampler.load_state_dict(state["sampler"], model)

    @classmethod
    def stored_state_bytes(
        cls, config: AlgorithmConfig, model: nn.Module, num_classes: int
    ) -> tuple[dict[str, int], int]:
        parts, per_slot = super().stored_state_bytes(config, model, num_classes)
        fixed, sampler_per_slot = SAMPLERS[config.sampler or cls.default_sampler].state_bytes(model, num_classes)
        return ({**parts, "sampler": fixed} if fixed or sampler_per_slot else parts), per_slot + sampler_per_slot
