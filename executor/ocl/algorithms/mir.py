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

In a pipeline whose stages live in several processes (executor/pipeline/scoring.py) the source
draws the candidates (`draw_candidates`), the scores are computed stage by stage, and the
source chooses with them (`choose`); the learner and a process with every stage score at once.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from executor.ocl.algorithms.base import AlgorithmConfig, register_algorithm
from executor.ocl.algorithms.er import ExperienceReplay, Replay
from executor.ocl.batch import TrainBatch, weighted_cross_entropy
from executor.ocl.cost import ZERO_COST, StepCost
from executor.ocl.modes import eval_mode


class Candidates(NamedTuple):
    """Replay candidates drawn for a step of `k` replayed rows: `scored` — they are to be scored
    and the best `k` chosen (`choose`); else they are the replay as they stand."""

    x: torch.Tensor
    y: torch.Tensor
    cost: StepCost
    k: int
    scored: bool


@register_algorithm("mir")
class MaximallyInterferedRetrieval(ExperienceReplay):
    """`mir`: ER that replays the candidates whose loss a virtual step on the new rows raises most.

    The model is never touched by the scoring; its extra forwards and backward are charged to the step's
    cost (see the module docstring).
    """

    extra_passes_at = "before_forward"  # the scoring precedes the datum's first forward

    def select_replay(
        self, model: nn.Module, new_x: torch.Tensor, new_y: torch.Tensor, new_weight: torch.Tensor | None, k: int
    ) -> Replay:
        drawn = self.candidates(new_x, new_y, k)
        if not drawn.scored:
            return drawn.x, drawn.y, drawn.cost
        return self.choose(drawn, self.interference(model, new_x, new_y, new_weight, drawn.x, drawn.y), new_x.shape[0])

    def draw_candidates(self, given: TrainBatch) -> Candidates:
        """A pipeline's stage 0, at a datum's first forward: its candidates (see `candidates`)."""
        num_new = given.num_new
        return self.candidates(given.x[:num_new], given.y[:num_new], self.replay_rows(given.rows, num_new, None))

    def candidates(self, new_x: torch.Tensor, new_y: torch.Tensor, k: int) -> Candidates:
        """The candidates for `k` replay rows: scored when there are more than `k` and new rows
        to take the virtual step on, else the replay itself (the first `k` drawn)."""
        if len(self.buffer) == 0 or k == 0:
            return Candidates(new_x[:0], new_y[:0], ZERO_COST, k, False)
        candidates, cost = self.draw(max(self.config.mir_candidates, k))
        cand_x, cand_y = self.buffer.get(candidates)
        if len(candidates) <= k or new_x.shape[0] == 0:
            return Candidates(cand_x[:k], cand_y[:k], cost, k, False)
        return Candidates(cand_x, cand_y, cost, k, True)

    def choose(self, drawn: Candidates, scores: torch.Tensor, new_rows: int) -> Replay:
        """The `k` candidates with the highest interference `scores`, in buffer order."""
        # Stable sort: ties keep the buffer order, so the choice is deterministic.
        top = torch.argsort(scores, descending=True, stable=True)[: drawn.k]
        top = torch.sort(top).values
        cost = drawn.cost + StepCost(forward=new_rows + 2 * drawn.x.shape[0], backward=new_rows)
        return drawn.x[top], drawn.y[top], cost

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
