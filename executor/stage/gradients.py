"""One datum's gradients through one stage's layers, as `StageRuntime.backward` needs them.

Pure tensor work with no stage state: the caller hands in the datum's kept input and output, the
parameters of the version it differentiates against, and — when the stage works on one flat
gradient buffer (compensation or accumulation) — that buffer, whose chunks are already those
parameters' `.grad` (executor/stage/layout.py). Nothing here touches the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import NamedTuple

import torch

from executor.stage.layout import ParamLayout

SecondOrder = tuple[tuple[torch.Tensor, ...], tuple[torch.nn.Parameter, ...], int]


class DatumGradients(NamedTuple):
    """What one backward of one datum through a stage yields.

    `grad_input`: d loss / d stage input (None at stage 0 or below a frozen prefix); `loss`: the
    detached loss when the caller gave a loss function; `grads`: the parameter gradients as
    autograd made them — empty when they were written into the flat buffer; `second_order`: for an
    hvp compensator, (gradients with their graph, their parameters, the first parameter's index).
    """

    grad_input: torch.Tensor | None
    loss: torch.Tensor | None
    grads: tuple[torch.Tensor, ...]
    second_order: SecondOrder | None = None


def datum_gradients(
    layout: ParamLayout,
    inp: torch.Tensor,
    out: torch.Tensor,
    params: Sequence[torch.nn.Parameter],
    grad_output: torch.Tensor | None,
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None,
    flat: torch.Tensor | None,
    first: int,
    wants_input: bool,
    second_order: bool,
) -> DatumGradients:
    """The gradients of parameters `first..` of `params` (and of `inp` when `wants_input`).

    With `flat` they are written into it (those before `first` stay zero); otherwise they come
    back as autograd made them, with no copy. With `second_order` (needs `flat`) they also keep
    their graph, for `hessian_vector`."""
    loss = None
    root = out
    if loss_fn is not None:
        root = loss_fn(out)
        loss = root.detach()
    inputs: tuple[torch.Tensor, ...] = tuple(params[first:])
    if wants_input:
        inputs = (inp, *inputs)
    if not inputs:
        return DatumGradients(None, loss, ())
    if second_order:
        assert flat is not None
        grads = torch.autograd.grad(
            root, inputs, grad_output, create_graph=True, allow_unused=True, materialize_grads=True
        )
        of_params = grads[1:] if wants_input else grads
        with torch.no_grad():
            flat.zero_()
            for chunk, g in zip(layout.chunks(flat)[first:], of_params, strict=True):
                chunk.copy_(g.reshape(-1))
        return DatumGradients(
            grads[0].detach() if wants_input else None, loss, (), (of_params, tuple(params[first:]), first)
        )
    if flat is not None:
        flat.zero_()
        torch.autograd.backward(root, grad_output, inputs=inputs)
        return DatumGradients(inp.grad if wants_input else None, loss, ())
    grads = torch.autograd.grad(root, inputs, grad_output, allow_unused=True, materialize_grads=True)
    if wants_input:
        return DatumGradients(grads[0], loss, grads[1:])
    return DatumGradients(None, loss, grads)


def per_layer(
    layout: ParamLayout, grads: tuple[torch.Tensor, ...], flat: torch.Tensor | None, first: int, clone: bool
) -> tuple[tuple[torch.Tensor, ...], ...]:
    """The datum's gradient per layer of the stage (empty for a frozen layer): autograd's
    tensors, or chunks of the flat buffer (copied when compensation will overwrite it)."""
    per_param: list[torch.Tensor] = list(grads) if flat is None else layout.chunks(flat)[first:]
    if clone:
        per_param = [g.clone() for g in per_param]
    return tuple(tuple(per_param[max(a, first) - first : max(b, first) - first]) for a, b in pairwise(layout.offsets))


def all_finite(grads: tuple[torch.Tensor, ...], flat: torch.Tensor | None) -> bool:
    """Whether no gradient holds a NaN or an inf."""
    if flat is not None:
        return bool(torch.isfinite(flat).all())
    if not grads:
        return True
    # One norm per tensor in one call: NaN or inf anywhere makes its norm non-finite.
    return bool(torch.stack(torch._foreach_norm(list(grads))).isfinite().all())
