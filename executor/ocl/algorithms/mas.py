"""MAS — memory aware synapses (Aljundi et al. 2018; SPEC §8): importance-weighted L2 anchor.

Importance of a parameter is the mean over trained samples of `|∂‖f(x)‖²₂ / ∂θ|`, where `f(x)`
are the logits. It is accumulated online after every update on the step's new rows (one extra
forward and backward of those rows in eval mode, charged to the step; with several new rows the
gradient of the batch mean stands in for the mean of per-sample gradients). At each consolidation (a new
task, or every `consolidate_every` trained samples) the anchor `θ*` becomes the current weights
and `Ω` the importance accumulated so far; from then on every step adds

    λ · Σ_p Ω_p · (θ_p − θ*_p)²        (λ = mas_lambda)

Memory ("importance" in the ledger): the running importance, plus `Ω` and `θ*` once anchored.

In a pipeline (executor/pipeline/stage_worker.py) each stage's owner keeps its stage's share:
`consolidate` (stage 0's process) numbers each anchor at a datum's admission (`generation`),
the datum carries the number up, and each stage anchors (`anchor_stage`: its `Ω` from its own
importance so far, its `θ*` from its current weights) when the first datum of a newer
generation reaches it. The importance pass of a datum whose backward is over runs stage by
stage (a forward up, the gradient of `‖f(x)‖²` down), each stage accumulating its own
parameters' importance (`accumulate`). The learner is a pipeline of one stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


def importance_objective(logits: torch.Tensor) -> torch.Tensor:
    """`‖f(x)‖²₂`, the mean over the rows: what the importance is the gradient of."""
    return logits.pow(2).sum(dim=1).mean()


@register_algorithm("mas")
class MemoryAwareSynapses(OCLAlgorithm):
    """`mas`: an importance-weighted L2 pull towards the weights anchored at the last consolidation.

    Importance accumulates online after every update; its tensors are charged as "importance" (see the
    module docstring for the penalty).
    """

    extra_passes_at = "after_backward"  # the importance pass follows the datum's update

    def __init__(self, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        super().__init__(config, context)
        self.consolidation = Consolidation(config.consolidate_every)
        self.generation = 0  # anchors numbered so far (stage 0's process decides them)
        self.passes = 0  # rows whose importance pass began here (stage 0's process)
        self.importance_sum: dict[str, torch.Tensor] = {}
        self.samples: dict[int, int] = {}  # per stage: rows whose importance it accumulated
        self.anchored: dict[int, int] = {}  # per stage: the generation of its Ω and θ*
        self.omega: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def observe(self, model: nn.Module, given: TrainBatch, batch_rows: int | None = None) -> TrainBatch:
        batch, generation = self.consolidate(given)
        self.anchor_stage(0, model.named_parameters(), generation)
        return batch

    def consolidate(self, given: TrainBatch) -> tuple[TrainBatch, int]:
        """Stage 0, at a datum's admission: number a new anchor when one is due (a new task, or
        `consolidate_every` samples, once some importance was measured). Returns the batch with
        the importance pass's cost, and the generation of the anchor its stages must hold."""
        if self.consolidation.due(given.task, given.num_new) and self.passes > 0:
            self.generation += 1
        return replace(given, cost=StepCost(forward=given.num_new, backward=given.num_new)), self.generation

    def anchor_stage(self, stage: int, named_parameters: Iterable[tuple[str, torch.Tensor]], generation: int) -> None:
        """Stage `stage` holds the anchor of `generation` (0: none): if its own is older, its `Ω`
        becomes the importance it accumulated so far and its `θ*` these (current) weights."""
        if generation <= self.anchored.get(stage, 0):
            return
        self.anchored[stage] = generation
        samples = self.samples.get(stage, 0)
        if samples:  # (a stage no importance pass reached yet keeps no anchor until the next one)
            for name, p in named_parameters:
                if name in self.importance_sum:
                    self.omega[name] = self.importance_sum[name] / samples
                    self.anchor[name] = p.detach().clone()
        self._charge()

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
        rows = self.begin_pass(batch)
        with eval_mode(model):
            squared_norm = importance_objective(model(batch.x[:rows]))
        grads = torch.autograd.grad(squared_norm, list(params.values()), allow_unused=True)
        self.accumulate(0, ((name, p, g) for (name, p), g in zip(params.items(), grads, strict=True)), rows)

    def begin_pass(self, batch: TrainBatch) -> int:
        """Stage 0's process: `batch`'s update is applied and its importance pass begins; its rows."""
        self.passes += batch.num_new
        return batch.num_new

    def accumulate(
        self, stage: int, gradients: Iterator[tuple[str, torch.Tensor, torch.Tensor | None]], rows: int
    ) -> None:
        """Stage `stage`'s share of an importance pass over `rows` rows: `(name, parameter,
        ∂‖f(x)‖²/∂parameter or None)` for each of its parameters."""
        with torch.no_grad():
            for name, p, g in gradients:
                contribution = torch.zeros_like(p) if g is None else g.abs() * rows
                if name in self.importance_sum:
                    self.importance_sum[name].add_(contribution)
                else:
                    self.importance_sum[name] = contribution
        self.samples[stage] = self.samples.get(stage, 0) + rows
        self._charge()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "consolidation": self.consolidation.state_dict(),
            "generation": self.generation,
            "passes": self.passes,
            "samples": dict(self.samples),
            "anchored": dict(self.anchored),
            "importance_sum": _cloned(self.importance_sum),
            "omega": _cloned(self.omega),
            "anchor": _cloned(self.anchor),
        }

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        super().load_state_dict(state, model)
        self.consolidation.load_state_dict(state["consolidation"])
        self.generation, self.passes = int(state["generation"]), int(state["passes"])
        self.samples = {int(k): int(v) for k, v in state["samples"].items()}
        self.anchored = {int(k): int(v) for k, v in state["anchored"].items()}
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
