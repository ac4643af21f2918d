"""MLP for tabular streams (Covertype-style) or flattened images."""

from __future__ import annotations

import math

from torch import nn

from executor.models.base import LayeredModel
from executor.models.registry import register_model


@register_model("mlp", default_input_shape=(54,))
def build_mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (256, 128, 64)) -> LayeredModel:
    """Hidden blocks `Linear → ReLU` (one planner layer each), then a linear classifier."""
    width = math.prod(input_shape)
    layers: list[tuple[str, nn.Module]] = []
    for i, h in enumerate(hidden):
        block: list[nn.Module] = [nn.Flatten()] if i == 0 else []
        block += [nn.Linear(width, h), nn.ReLU()]
        layers.append((f"fc{i + 1}", nn.Sequential(*block)))
        width = h
    head: list[nn.Module] = [] if hidden else [nn.Flatten()]
    layers.append(("classifier", nn.Sequential(*head, nn.Linear(width, num_classes))))
    return LayeredModel("mlp", layers, input_shape, num_classes)
