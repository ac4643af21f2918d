"""MIR — maximally interfered retrieval (Aljundi et al. 2019; SPEC §8).

Replay the buffer samples whose loss would rise most after the step the new rows are about to
cause. Per step: draw `mir_candidates` candidates uniformly from the reservoir buffer; take a
*virtual* SGD step `θ' = θ − lr·∇ℓ_new(θ)` on the new rows (a functional copy: the model is
not touched); score each candidate by `ℓ(θ') − ℓ(θ)`; replay the `replay_batch` highest.
With no more candidates than replay rows, all are replayed and no virtual step is taken; a
step with no new rows (a further step a compute budget buys before the next arrival) has no
virtual step to score against and replays the first candidates drawn. The candidates
come from the run's sampler (`--sampler`, default uniform).

The scoring passes run in eval mode under no-grad (except the virtual step's own gradient), so
they leave BatchNorm statistics untouched. Cost charged: forward + backward of the new rows
(virtual step) and two forwards of every candidate (before and after).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from executor.ocl.algorithms.base import AlgorithmConfig, register_algorithm
from executor.ocl.algorithms.er import ExperienceReplay, Replay
from executor.ocl.batch import weighted_cross_entropy
from executor.ocl.cost import ZERO_COST, StepCost
from executor.ocl.modes import eval_mode


@register_algorithm("mir")
class MaximallyInterferedRetrieval(ExperienceReplay):
    def select_replay(
        self, model: nn.Module, new_x: torch.Tensor, new_y: torch.Tensor, new_weight: torch.Tensor | None, k: int
    ) -> Replay:
        if len(self.buffer) == 0 or k == 0:
            return new_x[:0], new_y[:0], ZERO_COST
        candidates, cost = self.draw(max(self.config.mir_candidates, k))
        cand_x, cand_y = self.buffer.get(candidates)
        if len(candidates) <= k or new_x.shape[0] == 0:
            return cand_x[:k], cand_y[:k], cost
        scores = self.interference(model, new_x, new_y, new_weight, cand_x, cand_y)
        # Stable sort: ties keep the buffer order, so the choice is deterministic.
        top = torch.argsort(scores, descending=True, stable=True)[:k]
        top = torch.sort(top).values
        cost = cost + StepCost(forward=new_x.shape[0] + 2 * len(candidates), backward=new_x.shape[0])
        return cand_x[top], cand_y[top], cost

    @classmethod
    def step_passes(cls, config: AlgorithmConfig, batch_rows: int) -> StepCost:
        """The step, the virtual step on its one new row, two forwards of every candidate."""
        candidates = max(config.mir_candidates, batch_rows - 1)
        return StepCost.train(batch_rows) + StepCost(forward=1 + 2 * candidates, backward=1)

    def interference(
        self,
        model: nn.Module,
        new_x: torch.Tensor,
        new_y: torch.Tensor,
        new_weight: torch.Tensor | None,
        cand_x: torch.Tensor,
        cand_y: torch.Tensor,
    ) -> torch.Tensor:
        """`ℓ(θ − lr·∇ℓ_new) − ℓ(θ)` for each candidate row."""
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        with eval_mode(model):
            loss_new = weighted_cross_entropy(model(new_x), new_y, new_weight)
            grads = torch.autograd.grad(loss_new, list(params.values()), allow_unused=True)
            with torch.no_grad():
                virtual = {
                    name: p if g is None else p - self.context.lr * g
                    for (name, p), g in zip(params.items(), grads, strict=True)
                }
                before = F.cross_entropy(model(cand_x), cand_y, reduction="none")
                after = F.cross_entropy(functional_call(model, virtual, (cand_x,)), cand_y, reduction="none")
        return after - before
