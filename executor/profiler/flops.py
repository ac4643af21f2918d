"""Analytic forward cost of one leaf op (SPEC §10.1): FLOPs with a multiply–accumulate = 1 FLOP.

Counting rules, per op, for the whole (micro-)batch:
- `Conv1d/2d/3d`: `prod(kernel) · (C_in/groups) · C_out · prod(out spatial)` MACs, plus one
  FLOP per output element for the bias.
- `Linear`: `in · out` MACs per row, plus one FLOP per output element for the bias.
- Normalisation (`BatchNorm*`, `GroupNorm`, `LayerNorm`, `InstanceNorm*`) and point-wise
  activations (`ReLU`, `ReLU6`, `GELU`, …): one FLOP per output element.
- `MaxPool*`/`AvgPool*`: one FLOP per window element, `prod(kernel) · out elements`;
  adaptive average pooling: one FLOP per input element.
- Reshapes and no-ops (`Flatten`, `Identity`, `Dropout`): 0.
A leaf module of any other type raises `TypeError`: a new model must say what its ops cost
rather than be silently under-counted. A container that does arithmetic of its own (a residual
block's add) declares it with `extra_forward_flops(output) -> int` (see `executor.models.blocks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

FlopRule = Callable[[nn.Module, torch.Tensor, torch.Tensor], int]
FLOP_RULES: dict[type[nn.Module], FlopRule] = {}


def flop_rule(*types: type[nn.Module]) -> Callable[[FlopRule], FlopRule]:
    def deco(rule: FlopRule) -> FlopRule:
        for t in types:
            FLOP_RULES[t] = rule
        return rule

    return deco


def _bias(module: nn.Module, out: torch.Tensor) -> int:
    return out.numel() if getattr(module, "bias", None) is not None else 0


@flop_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def conv_flops(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    assert isinstance(module, nn.modules.conv._ConvNd)
    per_output = math.prod(module.kernel_size) * (module.in_channels // module.groups)
    return per_output * out.numel() + _bias(module, out)


@flop_rule(nn.Linear)
def linear_flops(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    assert isinstance(module, nn.Linear)
    return module.in_features * out.numel() + _bias(module, out)


@flop_rule(
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
)
def elementwise_flops(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    return out.numel()


@flop_rule(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def pool_flops(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    kernel: Any = module.kernel_size  # an int or a tuple, by pooling class
    window = math.prod(kernel) if isinstance(kernel, tuple) else int(kernel) ** (out.dim() - 2)
    return int(window) * out.numel()


@flop_rule(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
def adaptive_pool_flops(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    return inp.numel()


# Views and no-ops: no arithmetic, no memory traffic, no kernel; the trace skips them.
VIEW_OPS: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout2d)


def leaf_flops(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """FLOPs of one leaf module's forward, by the rules above."""
    if isinstance(module, VIEW_OPS):
        return 0
    # The first registered class in the MRO: a subclass (FrozenBatchNorm2d) inherits its rule.
    rule = next((FLOP_RULES[t] for t in type(module).__mro__ if t in FLOP_RULES), None)
    if rule is None:
        raise TypeError(f"no FLOP rule for {type(module).__name__}; add one to executor.profiler.flops.FLOP_RULES")
    return int(rule(module, inp, out))
