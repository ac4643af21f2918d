"""Flat packing of one stage's parameters, and installing a weight version into the modules.

A weight version of a stage is ONE contiguous 1-D tensor. Every parameter of the stage is a
view into it, wrapped as an `nn.Parameter` (an alias: no copy) and placed directly in its
module's `_parameters` slot, so the model's own modules always compute with the installed
version and `model(x)` predicts with the current weights. One flat tensor per version makes
cloning a version, the compensators and the byte count single-tensor operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ParamLayout:
    """Where each parameter of a stage lives: its module slot, shape and span in the flat tensor."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        slots: list[tuple[nn.Module, str]] = []
        tensors: list[torch.Tensor] = []
        seen: set[int] = set()
        per_module: list[int] = []
        for module in modules:
            per_module.append(len(slots))
            for owner in module.modules():
                for name, param in owner._parameters.items():
                    if param is None:
                        continue
                    if id(param) in seen:
                        raise ValueError("a stage's parameters must not be shared between modules (weight tying)")
                    if not param.requires_grad:
                        raise ValueError(f"parameter {name!r} of {type(owner).__name__} does not require grad")
                    seen.add(id(param))
                    slots.append((owner, name))
                    tensors.append(param)
        dtypes = {t.dtype for t in tensors}
        devices = {t.device for t in tensors}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValueError(f"a stage's parameters must share one dtype and device, got {dtypes} on {devices}")
        self.slots: tuple[tuple[nn.Module, str], ...] = tuple(slots)
        # Index of the first parameter of each module, and the count at the end: the parameters
        # of modules `m..` are `offsets[m]..` (a frozen prefix of a stage's layers, aL-SAR).
        self.offsets: tuple[int, ...] = (*per_module, len(slots))
        self.shapes: tuple[torch.Size, ...] = tuple(t.shape for t in tensors)
        self.numels: tuple[int, ...] = tuple(t.numel() for t in tensors)
        self.numel: int = sum(self.numels)
        self.dtype: torch.dtype = tensors[0].dtype if tensors else torch.float32
        self.device: torch.device = tensors[0].device if tensors else torch.device("cpu")
        self._initial = tensors

    @property
    def nbytes(self) -> int:
        return self.numel * torch.empty((), dtype=self.dtype).element_size()

    def pack_initial(self) -> torch.Tensor:
        """The modules' current parameter values as one new flat tensor."""
        flat = torch.empty(self.numel, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            for view, tensor in zip(self.views(flat), self._initial, strict=True):
                view.copy_(tensor)
        self._initial = []  # the originals are replaced by views; do not keep them alive
        return flat

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter views of a flat tensor (a version, a gradient, an optimizer buffer)."""
        return [chunk.view(shape) for chunk, shape in zip(flat.split(self.numels), self.shapes, strict=True)]

    def chunks(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter 1-D chunks of a flat tensor (cheaper than shaped views; same memory)."""
        return list(flat.split_with_sizes(self.numels)) if self.numels else []

    def parameters(self, flat: torch.Tensor, grad_views: Sequence[torch.Tensor] | None) -> tuple[nn.Parameter, ...]:
        """Leaf parameters aliasing `flat`, ready to be installed and differentiated against.

        With `grad_views` (views of the stage's flat gradient buffer) as their `.grad`, an
        `autograd.backward` accumulates every parameter's gradient straight into that buffer.
        """
        params = tuple(nn.Parameter(view) for view in self.views(flat))
        if grad_views is not None:
            attach_gradients(params, grad_views)
        return params

    def install(self, params: Sequence[nn.Parameter]) -> None:
        """Point every module slot at `params` (the modules then compute with that version)."""
        for (owner, name), param in zip(self.slots, params, strict=True):
            owner._parameters[name] = param

    def zeros(self) -> torch.Tensor:
        """A new flat tensor of zeros shaped like a version."""
        return torch.zeros(self.numel, dtype=self.dtype, device=self.device)


def attach_gradients(params: Sequence[nn.Parameter], grad_views: Sequence[torch.Tensor]) -> None:
    for param, grad_view in zip(params, grad_views, strict=True):
        param.grad = grad_view
