"""MAS — memory aware synapses (Aljundi et al. 2018; SPEC §8): importance-weighted L2 anchor.

Importance of a parameter is the mean over trained samples of `|∂‖f(x)‖²₂ / ∂θ|`, where `f(x)`
are the logits. It is accumulated online after every update on the step's new rows (one extra
forward and backward of those rows in eval mode, charged to the step; with several new rows the
gradient of the batch mean stands in for the mean of per-sample gradients). At each consolidation (a new
task, or every `consolidate_every` trained samples) the anchor `θ*` becomes the current weights
and `Ω` the importance accumulated so far; from then on every step adds

    λ · Σ_p Ω_p · (θ_p − θ*_p)²        (λ = mas_lambda)

Memory ("importance" in the ledger): the running importance, plus `Ω` and `θ*` once anchored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from executor.ledger import tensor_bytes
from executor.ocl.algorithms.base import (
    AlgorithmConfig,
    AlgorithmContext,
    Consolidation,
    OCLAlgorithm,
    register_algorithm,
)
from executor.ocl.batch import TrainBatch
from executor.ocl.cost import StepCost
from executor.ocl.modes import eval_mode


def _cloned(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.clone() for name, t in tensors.items()}


@register_algorithm("mas")
class MemoryAwareSynapses(OCLAlgorithm):
    """`mas`: an importance-weighted L2 pull towards the weights anchored at the last consolidation.

    Importance accumulates online after every update; its tensors are charged as "importance" (see the
    module docstring for the penalty).
    """

    def __init__(self, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        super().__init__(config, context)
        self.consolidation = Consolidation(config.consolidate_every)
        self.importance_sum: dict[str, torch.Tensor] = {}
        self.samples = 0
        self.omega: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def observe(self, model: nn.Module, given: TrainBatch, batch_rows: int | None = None) -> TrainBatch:
        if self.consolidation.due(given.task, given.num_new) and self.samples > 0:
            self._consolidate(model)
        return replace(given, cost=StepCost(forward=given.num_new, backward=given.num_new))

    def has_penalty(self) -> bool:
        return bool(self.omega) and self.config.mas_lambda > 0

    def penalty(self, named_parameters: Iterable[tuple[str, nn.Parameter]]) -> torch.Tensor | None:
        if not self.has_penalty():
            return None
        terms = [
            (self.omega[name] * (p - self.anchor[name]).pow(2)).sum()
            for name, p in named_parameters
            if name in self.omega
        ]
        if not terms:
            return None
        return self.config.mas_lambda * torch.stack(terms).sum()

    def after_update(self, model: nn.Module, batch: TrainBatch) -> None:
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        rows = batch.num_new
        with eval_mode(model):
            squared_norm = model(batch.x[:rows]).pow(2).sum(dim=1).mean()
        grads = torch.autograd.grad(squared_norm, list(params.values()), allow_unused=True)
        with torch.no_grad():
            for (name, p), g in zip(params.items(), grads, strict=True):
                contribution = torch.zeros_like(p) if g is None else g.abs() * rows
                if name in self.importance_sum:
                    self.importance_sum[name].add_(contribution)
                else:
                    self.importance_sum[name] = contribution
        self.samples += rows
        self._charge()

    def _consolidate(self, model: nn.Module) -> None:
        self.omega = {name: s / self.samples for name, s in self.importance_sum.items()}
        self.anchor = {name: p.detach().clone() for name, p in model.named_parameters() if name in self.omega}
        self._charge()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "consolidation": self.consolidation.state_dict(),
            "samples": self.samples,
            "importance_sum": _cloned(self.importance_sum),
            "omega": _cloned(self.omega),
            "anchor": _cloned(self.anchor),
        }

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        super().load_state_dict(state, model)
        self.consolidation.load_state_dict(state["consolidation"])
        self.samples = int(state["samples"])
        self.importance_sum = _cloned(state["importance_sum"])
        self.omega, self.anchor = _cloned(state["omega"]), _cloned(state["anchor"])
        self._charge()

    @classmethod
    def step_passes(cls, config: AlgorithmConfig, batch_rows: int) -> StepCost:
        """The step and the importance pass over its one new row."""
        return StepCost.train(batch_rows) + StepCost(forward=1, backward=1)

    @classmethod
    def stored_state_bytes(
        cls, config: AlgorithmConfig, model: nn.Module, num_classes: int
    ) -> tuple[dict[str, int], int]:
        """The running importance, `Ω` and `θ*`: three copies of the trainable parameters."""
        parts, per_slot = super().stored_state_bytes(config, model, num_classes)
        trainable = tensor_bytes(*(p for p in model.parameters() if p.requires_grad))
        return {**parts, "importance": 3 * trainable}, per_slot

    def _charge(self) -> None:
        held = [*self.importance_sum.values(), *self.omega.values(), *self.anchor.values()]
        self.context.ledger.set("importance", tensor_bytes(*held))
