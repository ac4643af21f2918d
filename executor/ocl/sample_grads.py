"""Per-sample gradients of a fixed random subset of weights, read off the training backward.

aL-SAR's class similarity (SPEC §10.3) needs, for every row of a training batch, the gradient
of that row's own loss with respect to a few weights: a fixed random subset of the last
conv/linear weight (in execution order: a residual block's second conv, not its shortcut) of
every layer but the classifier — `fraction` of its entries, rounded up, so at least one (0.01 %
of a 2,304-weight conv is no entry at all; the reference code's rounding down leaves only the
widest layers). Nothing extra is back-propagated: while `capture()` is active, a forward hook
keeps each target module's input and a tensor hook its output gradient; one weight entry's
per-sample gradient is then a sum of products over the output positions it touched,

    conv  w[o, i, kh, kw]:  g_b = B · Σ_{h,w} ∂ℓ/∂out[b, o, h, w] · x_pad[b, c(o, i), h·s + kh·d, w·s + kw·d]
    linear       w[o, i]:  g_b = B · ∂ℓ/∂out[b, o] · x[b, i]

(`B` undoes the batch mean of the loss), which costs `B · Σ_entries (output positions)`
multiply–accumulates — counted by `flops`. Layers whose backward did not run (a frozen
prefix) yield nothing: `gradients()` returns the columns of the unfrozen suffix only, which
are the last columns of the full vector because freezing is a prefix.

What is captured is kept per `key` (`capture(key)`, `gradients(key)`, `forget(key)`): a
learner captures one step at a time (key `None`); a pipeline has several data in flight,
whose stage forwards and backwards interleave, and reads each stage's columns off that
stage's backward of one datum (the key is the datum).

`state_dict` / `load_state_dict` carry the subset (and the output positions the FLOP count
uses) through a checkpoint; what is captured is not part of it (a checkpoint is taken with
nothing in flight).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from executor.models.base import LayeredModel
from executor.ocl.modes import eval_mode

Weighted = nn.Conv2d | nn.Linear


@dataclass
class _Target:
    layer: int
    module: Weighted
    entries: torch.Tensor  # flat indices into module.weight
    columns: slice  # where its entries sit in the full per-sample vector
    positions: int = 0  # output positions per row (conv: H_out·W_out), known after a forward
    # Per key: the module's input, and its output gradient once the backward reached it.
    captured: dict[Hashable, tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)
    index: tuple[torch.Tensor, ...] = ()
    index_key: tuple[object, ...] | None = None


def target_modules(model: LayeredModel, fraction: float) -> list[tuple[int, Weighted, int]]:
    """`(layer, module, entries)` of every target: the conv/linear that runs last in each layer but
    the classifier (found by one no-grad forward), and how many of its weights the subset takes."""
    order: list[nn.Module] = []
    handles = [
        m.register_forward_hook(lambda module, inputs, output: order.append(module))
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    first = next(iter(model.parameters()))
    try:
        with torch.no_grad(), eval_mode(model):
            model(torch.zeros((1, *model.input_shape), dtype=first.dtype, device=first.device))
    finally:
        for h in handles:
            h.remove()
    targets: list[tuple[int, Weighted, int]] = []
    for index, layer in enumerate(list(model.layers)[:-1]):
        inside = {id(m) for m in layer.modules()}
        ran = [m for m in order if id(m) in inside]
        if ran:
            module = ran[-1]
            assert isinstance(module, nn.Conv2d | nn.Linear)
            targets.append((index, module, math.ceil(fraction * module.weight.numel())))
    return targets


class SubsetGradients:
    """Per-sample gradients of a fixed random subset of one model's weights, read off its backward.

    The subset is drawn once at construction (`size` columns in all); `capture(key)` records a pass and
    `gradients(key)` returns one row of columns per sample (see the module docstring).
    """

    def __init__(self, model: LayeredModel, fraction: float, rng: np.random.Generator) -> None:
        self.targets: list[_Target] = []
        start = 0
        for index, module, count in target_modules(model, fraction):
            entries = torch.from_numpy(np.sort(rng.choice(module.weight.numel(), size=count, replace=False)))
            self.targets.append(_Target(index, module, entries, slice(start, start + count)))
            start += count
        self.size = start

    def state_dict(self) -> dict[str, Any]:
        """The subset's entries and output positions per target (copies)."""
        return {
            "entries": [t.entries.clone() for t in self.targets],
            "positions": [t.positions for t in self.targets],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()` of a subset of the same model."""
        sizes = [len(e) for e in state["entries"]]
        if sizes != [len(t.entries) for t in self.targets]:
            raise ValueError(
                f"a weight subset of {sizes} entries per target; this model's takes {[len(t.entries) for t in self.targets]}"
            )
        for target, entries, positions in zip(self.targets, state["entries"], state["positions"], strict=True):
            target.entries = entries.clone()
            target.positions = int(positions)
            target.index, target.index_key = (), None

    @contextlib.contextmanager
    def capture(self, key: Hashable = None) -> Iterator[None]:
        """Record target inputs and output gradients of the training pass run inside, under `key`."""
        handles = [t.module.register_forward_hook(self._forward_hook(t, key)) for t in self.targets]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _forward_hook(
        self, target: _Target, key: Hashable
    ) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            target.captured[key] = (inputs[0].detach(), None)
            target.positions = int(output[0, 0].numel()) if output.dim() > 2 else 1
            if output.requires_grad:
                output.register_hook(lambda grad: self._arrived(target, key, grad))

        return hook

    @staticmethod
    def _arrived(target: _Target, key: Hashable, grad: torch.Tensor) -> None:
        inputs, _ = target.captured[key]
        target.captured[key] = (inputs, grad.detach())

    def gradients(self, key: Hashable = None) -> tuple[torch.Tensor, int]:
        """`(G, first)`: per-sample gradients `G[b, j]` of the columns `first..` of the targets whose
        backward ran under `key` since the last call (contiguous: freezing is a prefix, and a
        pipeline asks after each stage's backward), and the first column; they are consumed."""
        done = [t for t in self.targets if t.captured.get(key, (None, None))[1] is not None]
        if not done:
            return torch.zeros(0, 0), self.size
        parts = [self._entries(*t.captured.pop(key), t) for t in done]  # type: ignore[arg-type]
        return torch.cat(parts, dim=1), done[0].columns.start

    def forget(self, key: Hashable = None) -> None:
        """Drop what is still captured under `key` (targets whose backward never ran: frozen, omitted)."""
        for t in self.targets:
            t.captured.pop(key, None)

    def flops(self, rows: int, first: int) -> float:
        """Multiply–accumulates of `gradients()` for `rows` rows, targets from column `first` on."""
        return float(rows * sum(len(t.entries) * t.positions for t in self.targets if t.columns.start >= first))

    @staticmethod
    def _entries(x: torch.Tensor, grad: torch.Tensor, target: _Target) -> torch.Tensor:
        rows = grad.shape[0]
        key = (tuple(x.shape[1:]), tuple(grad.shape[1:]), x.device)
        if target.index_key != key:  # index tensors depend only on the shapes: built once
            target.index, target.index_key = _index(target.module, target.entries, x, grad), key
        if isinstance(target.module, nn.Linear):
            out_i, in_i = target.index
            # Linear on (B, *, in): sum the per-position products.
            flat_grad = grad.reshape(rows, -1, target.module.out_features)
            products = flat_grad[:, :, out_i] * x.reshape(rows, -1, target.module.in_features)[:, :, in_i]
            return products.sum(dim=1) * rows
        out_i, channel, row, col, valid = target.index
        patches = x[:, channel, row, col]  # (B, E, H_out, W_out): the input each entry multiplied
        return (patches * (grad[:, out_i] * valid)).sum(dim=(2, 3)) * rows


def _index(module: Weighted, entries: torch.Tensor, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Gather indices of the entries' inputs (and, for a conv, which positions fall in the padding)."""
    device = x.device
    if isinstance(module, nn.Linear):
        out_i, in_i = np.unravel_index(entries.numpy(), (module.out_features, module.in_features))
        return torch.from_numpy(out_i).to(device), torch.from_numpy(in_i).to(device)
    if isinstance(module.padding, str) or module.padding_mode != "zeros":
        raise TypeError("per-sample gradients need a conv with numeric zero padding")
    out_c, in_per_group = module.weight.shape[:2]
    o, i, kh, kw = (torch.from_numpy(a) for a in np.unravel_index(entries.numpy(), tuple(module.weight.shape)))
    channel = (o // (out_c // module.groups)) * in_per_group + i  # the input channel entry (o, i) reads
    axes = []
    for k, pad, stride, dilation, size_in, size_out in zip(
        (kh, kw), module.padding, module.stride, module.dilation, x.shape[2:], grad.shape[2:], strict=True
    ):
        at = k[:, None] * dilation - pad + stride * torch.arange(size_out)[None, :]  # (E, size_out)
        axes.append((at.clamp(0, size_in - 1), (at >= 0) & (at < size_in)))
    (row, row_ok), (col, col_ok) = axes
    valid = (row_ok[:, :, None] & col_ok[:, None, :]).to(x.dtype)
    return (
        o.to(device),
        channel[:, None, None].to(device),
        row[:, :, None].to(device),
        col[:, None, :].to(device),
        valid.to(device),
    )
