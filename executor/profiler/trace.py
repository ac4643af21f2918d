"""One forward pass with hooks: the op-level costs of every layer of a `LayeredModel`.

Everything the analytic side of the profiler needs (FLOPs, bytes moved, activation and
parameter bytes, kernel launches) comes from this single traced pass, so the FLOP counter and
the roofline model can never disagree about what a layer does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from executor.models.base import LayeredModel
from executor.profiler.flops import VIEW_OPS, leaf_flops
from planner.limits import check_work
from planner.provenance import layers_id, structure_id


@dataclass(frozen=True)
class OpCost:
    """One kernel-sized op: a leaf module's forward, or a block's own element-wise merge."""

    kind: str
    flops: int
    in_bytes: int
    out_bytes: int
    param_bytes: int

    @property
    def bytes_moved(self) -> int:
        """Bytes a forward must read or write at least once: inputs, outputs, weights."""
        return self.in_bytes + self.out_bytes + self.param_bytes


@dataclass(frozen=True)
class LayerCost:
    """One layer's costs from the traced forward: its ops, input, output and parameter bytes.

    `flops` is the sum over its ops.
    """

    name: str
    ops: tuple[OpCost, ...]
    in_bytes: int
    out_bytes: int
    param_bytes: int

    @property
    def flops(self) -> int:
        return sum(op.flops for op in self.ops)


def _nbytes(t: Any) -> int:
    if isinstance(t, torch.Tensor):
        return t.numel() * t.element_size()
    if isinstance(t, tuple | list):
        return sum(_nbytes(x) for x in t)
    return 0


def _own_param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))


def trace_layers(model: LayeredModel, batch_size: int = 1) -> list[LayerCost]:
    """Run one forward on a zero batch and record each layer's ops (eval mode, no grad).

    Train/eval mode changes no shape, so eval mode is used to leave BatchNorm statistics
    untouched; the model's modes are restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    modes = [m.training for m in model.modules()]
    costs: list[LayerCost] = []
    model.eval()
    try:
        x = torch.zeros((batch_size, *model.input_shape), device=device, dtype=dtype)
        with torch.no_grad():
            for name, layer in zip(model.layer_names, model.layers, strict=True):
                ops: list[OpCost] = []
                handles = [_hook(m, ops) for m in layer.modules() if _is_costed(m)]
                try:
                    out = layer(x)
                finally:
                    for h in handles:
                        h.remove()
                param_bytes = sum(p.numel() * p.element_size() for p in layer.parameters())
                costs.append(LayerCost(name, tuple(ops), _nbytes(x), _nbytes(out), param_bytes))
                x = out
    finally:
        for m, mode in zip(model.modules(), modes, strict=True):
            m.training = mode
    return costs


def _is_costed(module: nn.Module) -> bool:
    return next(iter(module.children()), None) is None or hasattr(module, "extra_forward_flops")


def _hook(module: nn.Module, ops: list[OpCost]) -> torch.utils.hooks.RemovableHandle:
    is_leaf = next(iter(module.children()), None) is None

    def record(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if is_leaf and not isinstance(mod, VIEW_OPS):
            inp = inputs[0] if inputs else output
            flops = leaf_flops(mod, inp, output)
            ops.append(OpCost(type(mod).__name__, flops, _nbytes(inputs), _nbytes(output), _own_param_bytes(mod)))
        extra = getattr(mod, "extra_forward_flops", None)
        if extra is not None:
            # A block's own merge (residual add): reads two operands, writes the output.
            out_bytes = _nbytes(output)
            ops.append(OpCost(f"{type(mod).__name__}.merge", int(extra(output)), 2 * out_bytes, out_bytes, 0))

    return module.register_forward_hook(record)


def layer_flops(model: LayeredModel, batch_size: int = 1) -> list[int]:
    """Analytic forward FLOPs of each layer for a batch of `batch_size` (SPEC §10.1)."""
    return [cost.flops for cost in trace_layers(model, batch_size)]


def activation_bytes(model: LayeredModel, batch_size: int = 1) -> list[int]:
    """Bytes of each layer's output for a batch: what a stage keeps for the backward (â_l)."""
    return [cost.out_bytes for cost in trace_layers(model, batch_size)]


def parameter_bytes(model: LayeredModel) -> list[int]:
    """Bytes of each layer's parameters (ŵ_l); buffers such as BatchNorm statistics excluded."""
    return [sum(p.numel() * p.element_size() for p in layer.parameters()) for layer in model.layers]


def model_provenance(model: LayeredModel) -> dict[str, Any]:
    """What a profile of `model` was made for (planner/provenance.py)."""
    return {"model": model.name, "input_shape": list(model.input_shape), "num_classes": model.num_classes}


def model_made_from(model: LayeredModel) -> dict[str, Any]:
    """`model_provenance` plus the model's `structure`, to check a profile or plan against."""
    costs = trace_layers(model, 1)
    layers = ((cost.name, cost.param_bytes, cost.out_bytes) for cost in costs)
    return {**model_provenance(model), "layers": layers_id(c.name for c in costs), "structure": structure_id(layers)}


def check_batch_fits(model: LayeredModel, batch_size: int) -> None:
    """Refuse to run `model` at `batch_size` when its input and activations would pass the
    memory limit (traced at batch 1, scaled), before a real forward allocates them."""
    per_datum = sum(cost.out_bytes for cost in trace_layers(model, 1)) + 4 * math.prod(model.input_shape)
    check_work("max_memory_bytes", batch_size * per_datum, f"{model.name} at batch {batch_size}")
