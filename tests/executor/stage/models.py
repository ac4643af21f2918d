"""Tiny models for the stage tests, small enough to check by hand."""

from __future__ import annotations

import torch
from torch import nn

from executor.models.base import LayeredModel


def linear_chain(num_layers: int, width: int, bias: bool = True, seed: int = 0) -> LayeredModel:
    """`num_layers` layers `Linear(width, width)`: every layer has the same parameter and output
    size, and the input is as large as each layer's output — the closed form's balanced case."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [(f"fc{i}", nn.Linear(width, width, bias=bias)) for i in range(num_layers)]
    return LayeredModel("linear-chain", layers, (width,), width)


def scalar_chain(weights: list[float]) -> LayeredModel:
    """Layer `l` multiplies its input by the scalar `weights[l]` (a 1×1 Linear, no bias)."""
    layers = []
    for i, w in enumerate(weights):
        lin = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            lin.weight.fill_(w)
        layers.append((f"w{i}", lin))
    return LayeredModel("scalar-chain", layers, (1,), 2)
