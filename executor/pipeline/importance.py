"""MAS's importance pass stage by stage, for a pipeline (executor/ocl/algorithms/mas.py).

MAS accumulates, after a datum's update, `|∂‖f(x)‖²/∂θ|` of its new rows (eval mode, current
weights). Stage by stage that is a forward up (`up`: each stage keeps its graph and holds its
weight version, so that an update before its backward copies on write) and, from the last
stage's `‖f(x)‖²`, a backward down (`down`); each stage accumulates its own parameters'
importance into the algorithm (`MemoryAwareSynapses.accumulate`). The arithmetic is the whole
model's, op for op, so the importances are the learner's bit for bit. A process with every
stage runs the pass at once (`run_here`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from executor.ocl.algorithms.mas import MemoryAwareSynapses, importance_objective
from executor.ocl.modes import eval_mode
from executor.stage import StageRuntime
from executor.stage.versions import Version


class StageImportance:
    """One process's share of MAS's importance passes: per (sample, stage) between its forward and
    backward, the stage's input, output, held version and rows."""

    def __init__(
        self,
        stages: Mapping[int, StageRuntime],
        names: Mapping[int, Sequence[str]],
        num_stages: int,
        mas: MemoryAwareSynapses,
    ) -> None:
        self.stages = stages
        self.names = names  # per stage, its parameters' names in the runtime's order
        self.P = num_stages
        self.mas = mas
        self._graphs: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, Version, int]] = {}

    def up(self, sample: int, stage: int, x: torch.Tensor) -> torch.Tensor | None:
        """The forward of `sample`'s new rows through `stage`: the output for the stage above —
        or, at the last stage, the backward of `‖f(x)‖²` at once and the gradient for the stage
        below (None: no stage below)."""
        runtime = self.stages[stage]
        last = stage == self.P - 1
        version = runtime.versions.current if last else runtime.versions.acquire()
        inp = x.detach()
        if stage > 0:
            inp.requires_grad_()
        with torch.enable_grad(), eval_mode(*runtime.layers):
            out = inp
            for layer in runtime.layers:
                out = layer(out)
        rows = int(x.shape[0])
        if last:
            return self._backward(stage, importance_objective(out), None, inp, version.params, rows)
        self._graphs[(sample, stage)] = (inp, out, version, rows)
        return out.detach()

    def down(self, sample: int, stage: int, grad: torch.Tensor) -> torch.Tensor | None:
        """The backward through `stage` from the stage above's `grad`: the gradient for the stage
        below (None at stage 0)."""
        inp, out, version, rows = self._graphs.pop((sample, stage))
        result = self._backward(stage, out, grad, inp, version.params, rows)
        versions = self.stages[stage].versions
        versions.release(version)
        versions.trim()
        return result

    def run_here(self, rows: torch.Tensor) -> None:
        """Every stage is here: the pass at once (sample key -1)."""
        x: torch.Tensor | None = rows  # up the stages; from the last one's, the gradient down them
        for stage in range(self.P):
            assert x is not None
            x = self.up(-1, stage, x)
        for stage in range(self.P - 2, -1, -1):
            assert x is not None
            x = self.down(-1, stage, x)

    def _backward(
        self,
        stage: int,
        out: torch.Tensor,
        grad: torch.Tensor | None,
        inp: torch.Tensor,
        params: Sequence[torch.Tensor],
        rows: int,
    ) -> torch.Tensor | None:
        targets = [*params, inp] if stage > 0 else list(params)
        grads = torch.autograd.grad(out, targets, grad_outputs=grad, allow_unused=True)
        n = len(params)
        self.mas.accumulate(stage, zip(self.names[stage], params, grads[:n], strict=True), rows)
        return grads[n] if stage > 0 else None
