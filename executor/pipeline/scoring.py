"""MIR's interference scores stage by stage, for a pipeline whose stages live in several processes.

MIR (executor/ocl/algorithms/mir.py) scores each replay candidate by `ℓ(θ') − ℓ(θ)`, with
`θ' = θ − lr·∇ℓ_new(θ)` a virtual step of the whole model on the datum's new rows. Stage by
stage, that is three passes over the stages, all in eval mode and on each stage's current
weights:

1. `first` — up: the new rows' forward with its graph kept (the stage's version held until
   its backward, so an update meanwhile copies on write), and the candidates' forward (`ℓ(θ)`
   at the last stage, which then starts the backward of `ℓ_new` at once);
2. `down` — the backward of `ℓ_new` through the stage: its gradient makes the stage's share
   of `θ'`;
3. `second` — up: the candidates through the virtual weights; at the last stage `ℓ(θ')`, and
   the scores.

The source draws the candidates before the first pass and chooses with the scores after the
last (`draw`, `batch`: `MaximallyInterferedRetrieval.draw_candidates`, `.choose`). The arithmetic is the whole
model's, op for op, so the scores are the learner's bit for bit. A process with every stage
runs the three passes at once (`score_here`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from executor.ocl.algorithms.mir import Candidates, MaximallyInterferedRetrieval
from executor.ocl.batch import TrainBatch, weighted_cross_entropy
from executor.ocl.modes import eval_mode
from executor.stage import StageRuntime
from executor.stage.versions import Version


class Labels(NamedTuple):
    """What the last stage's losses need: the new rows' labels and weights, the candidates' labels."""

    new_y: torch.Tensor
    new_weight: torch.Tensor | None
    cand_y: torch.Tensor


class StageScoring:
    """One process's share of MIR's scoring passes: per (sample, stage), what a pass left for the
    next (the new rows' graph and held version; the virtual weights; at the last stage `ℓ(θ)`)."""

    def __init__(self, mir: MaximallyInterferedRetrieval, stages: Mapping[int, StageRuntime], num_stages: int) -> None:
        self.mir = mir
        self.stages = stages
        self.P = num_stages
        self.lr = mir.context.lr
        # Each stage's layers as one module, to run them on the virtual weights (`functional_call`);
        # its parameters are the stage's, in the runtime's order.
        self._modules = {j: nn.Sequential(*runtime.layers) for j, runtime in stages.items()}
        self._names = {j: [name for name, _ in module.named_parameters()] for j, module in self._modules.items()}
        self._graphs: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, Version]] = {}
        self._virtual: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
        self._before: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # sample → (ℓ(θ), candidates' labels)

    # ------------------------------------------------------------------ the source's side
    def draw(self, given: TrainBatch) -> Candidates:
        """The datum's replay candidates, drawn before the first pass."""
        return self.mir.draw_candidates(given)

    def labels(self, given: TrainBatch, drawn: Candidates) -> Labels:
        """What the last stage's losses need (the new rows' labels and weights, the candidates')."""
        num_new = given.num_new
        return Labels(given.y[:num_new], None if given.weight is None else given.weight[:num_new], drawn.y)

    def batch(self, given: TrainBatch, drawn: Candidates, scores: torch.Tensor | None) -> TrainBatch:
        """The datum's micro-batch with the replay MIR chose (`scores` None: nothing was scored)."""
        replay = (drawn.x, drawn.y, drawn.cost) if scores is None else self.mir.choose(drawn, scores, given.num_new)
        return self.mir.with_replay(given, replay)

    # ------------------------------------------------------------------ the passes
    def first(
        self, sample: int, stage: int, new_x: torch.Tensor, cand_x: torch.Tensor, labels: Labels
    ) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor | None:
        """Pass 1 at `stage`: the new rows' and the candidates' outputs for the stage above — or,
        at the last stage, the gradient of `ℓ_new` for the stage below (None: no stage below)."""
        runtime = self.stages[stage]
        version = runtime.versions.acquire()
        inp = new_x.detach()
        if stage > 0:
            inp.requires_grad_()
        with eval_mode(*runtime.layers):
            with torch.enable_grad():
                new_out = _run(runtime, inp)
            with torch.no_grad():
                cand_out = _run(runtime, cand_x)
        key = (sample, stage)
        self._graphs[key] = (inp, new_out, version)
        if stage < self.P - 1:
            return new_out.detach(), cand_out
        self._before[sample] = (F.cross_entropy(cand_out, labels.cand_y, reduction="none"), labels.cand_y)
        with eval_mode(*runtime.layers):
            loss_new = weighted_cross_entropy(new_out, labels.new_y, labels.new_weight)
        self._graphs[key] = (inp, loss_new, version)
        return self.down(sample, stage, None)

    def down(self, sample: int, stage: int, grad: torch.Tensor | None) -> torch.Tensor | None:
        """Pass 2 at `stage`: the virtual step of its weights; the gradient for the stage below
        (None at stage 0)."""
        inp, out, version = self._graphs.pop((sample, stage))
        params = version.params
        targets = [*params, inp] if stage > 0 else list(params)
        with eval_mode(*self.stages[stage].layers):
            grads = torch.autograd.grad(out, targets, grad_outputs=grad, allow_unused=True)
        with torch.no_grad():
            self._virtual[(sample, stage)] = {
                name: p if g is None else p - self.lr * g
                for name, p, g in zip(self._names[stage], params, grads[: len(params)], strict=True)
            }
        versions = self.stages[stage].versions
        versions.release(version)
        versions.trim()
        return grads[len(params)] if stage > 0 else None

    def second(self, sample: int, stage: int, cand_x: torch.Tensor) -> torch.Tensor:
        """Pass 3 at `stage`: the candidates through its virtual weights — the output for the
        stage above, or at the last stage the scores `ℓ(θ') − ℓ(θ)`."""
        virtual = self._virtual.pop((sample, stage))
        module = self._modules[stage]
        with torch.no_grad(), eval_mode(*self.stages[stage].layers):
            out = functional_call(module, virtual, (cand_x,))
        if stage < self.P - 1:
            return out
        before, cand_y = self._before.pop(sample)
        return F.cross_entropy(out, cand_y, reduction="none") - before

    def score_here(self, new_x: torch.Tensor, cand_x: torch.Tensor, labels: Labels) -> torch.Tensor:
        """Every stage is here: the three passes at once (sample key -1)."""
        up: tuple[torch.Tensor, torch.Tensor] | torch.Tensor | None = (new_x, cand_x)
        for stage in range(self.P):
            assert isinstance(up, tuple)
            up = self.first(-1, stage, up[0], up[1], labels)
        grad = up
        for stage in range(self.P - 2, -1, -1):
            assert isinstance(grad, torch.Tensor)
            grad = self.down(-1, stage, grad)
        x = cand_x
        for stage in range(self.P):
            x = self.second(-1, stage, x)
        return x


def _run(runtime: StageRuntime, x: torch.Tensor) -> torch.Tensor:
    for layer in runtime.layers:
        x = layer(x)
    return x
