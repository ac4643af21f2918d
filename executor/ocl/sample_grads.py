"""Per-sample gradients of a fixed random subset of weights, read off the training backward.

aL-SAR's class similarity (SPEC §10.3) needs, for every row of a training batch, the gradient
of that row's own loss with respect to a few weights: a fixed random subset of the last
conv/linear weight of every layer but the classifier (`fraction` of its entries, at least
`MIN_ENTRIES`). Nothing extra is back-propagated: while `capture()` is active, a forward hook
keeps each target module's input and a tensor hook its output gradient; one weight entry's
per-sample gradient is then a sum of products over the output positions it touched,

    conv  w[o, i, kh, kw]:  g_b = B · Σ_{h,w} ∂ℓ/∂out[b, o, h, w] · x_pad[b, c(o, i), h·s + kh·d, w·s + kw·d]
    linear       w[o, i]:  g_b = B · ∂ℓ/∂out[b, o] · x[b, i]

(`B` undoes the batch mean of the loss), which costs `B · Σ_entries (output positions)`
multiply–accumulates — counted by `flops`. Layers whose backward did not run (a frozen
prefix) yield nothing: `gradients()` returns the columns of the unfrozen suffix only, which
are the last columns of the full vector because freezing is a prefix.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from executor.models.base import LayeredModel

# 0.01 % of a weight (SPEC §10.3) is no entry at all for the small layers of CIFAR models
# (a 16-channel 3×3 conv has 2,304 weights), so every target keeps at least this many.
MIN_ENTRIES = 8


Weighted = nn.Conv2d | nn.Linear


@dataclass
class _Target:
    layer: int
    module: Weighted
    entries: torch.Tensor  # flat indices into module.weight
    columns: slice  # where its entries sit in the full per-sample vector
    positions: int = 0  # output positions per row (conv: H_out·W_out), known after a forward
    inputs: torch.Tensor | None = None
    grad_out: torch.Tensor | None = None


def target_modules(model: LayeredModel, fraction: float) -> list[tuple[int, Weighted, int]]:
    """`(layer, module, entries)` of every target: the last conv/linear of each layer but the
    classifier, and how many of its weights the subset takes."""
    targets: list[tuple[int, Weighted, int]] = []
    for index, layer in enumerate(list(model.layers)[:-1]):
        weighted: list[Weighted] = [m for m in layer.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        if weighted:
            numel = weighted[-1].weight.numel()
            targets.append((index, weighted[-1], min(numel, max(MIN_ENTRIES, math.ceil(fraction * numel)))))
    return targets


class SubsetGradients:
    def __init__(self, model: LayeredModel, fraction: float, rng: np.random.Generator) -> None:
        self.targets: list[_Target] = []
        start = 0
        for index, module, count in target_modules(model, fraction):
            entries = torch.from_numpy(np.sort(rng.choice(module.weight.numel(), size=count, replace=False)))
            self.targets.append(_Target(index, module, entries, slice(start, start + count)))
            start += count
        self.size = start

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Record target inputs and output gradients of the training pass run inside."""
        handles = [t.module.register_forward_hook(self._forward_hook(t)) for t in self.targets]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _forward_hook(self, target: _Target) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            target.inputs, target.grad_out = inputs[0].detach(), None
            target.positions = int(output[0, 0].numel()) if output.dim() > 2 else 1
            if output.requires_grad:
                output.register_hook(lambda grad: setattr(target, "grad_out", grad.detach()))

        return hook

    def gradients(self) -> tuple[torch.Tensor, int]:
        """`(G, first)`: per-sample gradients `G[b, j]` of columns `first..size-1` (the targets
        whose backward ran this step), and the first column; then forgets the captured tensors."""
        done = [t for t in self.targets if t.grad_out is not None]
        if not done:
            self._clear()
            return torch.zeros(0, 0), self.size
        parts = [self._entries(t) for t in done]
        first = done[0].columns.start
        self._clear()
        return torch.cat(parts, dim=1), first

    def flops(self, rows: int, first: int) -> float:
        """Multiply–accumulates of `gradients()` for `rows` rows, targets from column `first` on."""
        return float(rows * sum(len(t.entries) * t.positions for t in self.targets if t.columns.start >= first))

    def _clear(self) -> None:
        for t in self.targets:
            t.inputs = t.grad_out = None

    @staticmethod
    def _entries(target: _Target) -> torch.Tensor:
        x, grad, module = target.inputs, target.grad_out, target.module
        assert x is not None and grad is not None
        rows = grad.shape[0]
        if isinstance(module, nn.Linear):
            out_i, in_i = np.unravel_index(target.entries.numpy(), (module.out_features, module.in_features))
            # Linear on (B, *, in): sum the per-position products.
            products = (
                grad.reshape(rows, -1, module.out_features)[:, :, out_i]
                * x.reshape(rows, -1, module.in_features)[:, :, in_i]
            )
            return products.sum(dim=1) * rows
        return _conv_entries(module, x, grad, target.entries) * rows


def _conv_entries(module: nn.Conv2d, x: torch.Tensor, grad: torch.Tensor, entries: torch.Tensor) -> torch.Tensor:
    out_c, in_per_group = module.weight.shape[:2]
    o, i, kh, kw = (torch.from_numpy(a) for a in np.unravel_index(entries.numpy(), tuple(module.weight.shape)))
    if isinstance(module.padding, str):
        raise TypeError("per-sample gradients need a conv with numeric padding")
    pad_h, pad_w = module.padding
    if module.padding_mode != "zeros":
        raise TypeError("per-sample gradients need a zero-padded conv")
    x = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
    stride_h, stride_w = module.stride
    dil_h, dil_w = module.dilation
    h_out, w_out = grad.shape[2], grad.shape[3]
    channel = (o // (out_c // module.groups)) * in_per_group + i  # the input channel entry (o, i) reads
    rows = kh[:, None] * dil_h + stride_h * torch.arange(h_out)[None, :]
    cols = kw[:, None] * dil_w + stride_w * torch.arange(w_out)[None, :]
    device = x.device
    patches = x[:, channel[:, None, None].to(device), rows[:, :, None].to(device), cols[:, None, :].to(device)]
    return (patches * grad[:, o.to(device)]).sum(dim=(2, 3))
