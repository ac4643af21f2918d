"""`LayeredModel`: a model exposed as the ordered, partitionable layers the planner sees.

A "layer" is the planner's unit (a conv block, a residual block, a linear layer). Stage `j`
of a plan runs layers `partition[j] .. partition[j+1]-1` via `forward_range`. The last layer
is the classifier and ends in an `nn.Linear`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LayeredModel(nn.Module):
    def __init__(
        self,
        name: str,
        layers: Sequence[tuple[str, nn.Module]],
        input_shape: tuple[int, ...],
        num_classes: int,
    ) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a LayeredModel needs at least one layer")
        self.name = name
        self.layer_names: tuple[str, ...] = tuple(n for n, _ in layers)
        self.layers = nn.ModuleList(m for _, m in layers)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_range(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Run layers `start .. stop-1` (a pipeline stage)."""
        for layer in self.layers[start:stop]:
            x = layer(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate representation: the input of the classifier layer, flattened."""
        return self.forward_range(x, 0, self.num_layers - 1).flatten(1)

    @property
    def classifier(self) -> nn.Linear:
        """The final linear map of the classifier layer (used by aL-SAR's freezing score)."""
        last = self.layers[-1]
        linears = [m for m in last.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise TypeError(f"{self.name}: the last layer has no nn.Linear classifier")
        return linears[-1]


def require_layered(model: nn.Module, needs: str) -> LayeredModel:
    """`model` as a `LayeredModel`, or a `FerretError` saying what needed its layers."""
    if not isinstance(model, LayeredModel):
        from planner.errors import FerretError

        raise FerretError(f"{needs} needs a layered model (executor.models), got {type(model).__name__}")
    return model


def flat_size(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of features `module` produces for one input of `input_shape` (no grad, eval)."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        out = module(torch.zeros(1, *input_shape))
    module.train(was_training)
    return int(out[0].numel())
