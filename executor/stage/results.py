"""What a stage op reports back to the executor (which writes version and staleness into the trace)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch


class ForwardResult(NamedTuple):
    output: torch.Tensor  # detached; the executor carries it to the next stage
    version: int  # weight version the forward ran on
    stored: bool  # False: this stage will not back-propagate the datum and stored nothing
    bytes: int  # activation bytes stored for the backward (the trace's `bytes` of a fwd row)


class UpdateResult(NamedTuple):
    version: int  # the version the step was applied to; it produced `version + 1` (trace schema)
    staleness: int  # the largest staleness among the gradients it applies
    samples: tuple[int, ...]  # the data whose gradients it applies, in backward order
    skipped: bool = False  # the gradient had a NaN or inf: nothing was applied (`guard_nonfinite`)


class BackwardResult(NamedTuple):
    grad_input: torch.Tensor | None  # for the stage below; None: stage 0, omitted or (partly) frozen
    ran: bool  # False: omitted (T3) or wholly frozen — nothing was computed here
    version: int  # the stashed version the gradient was taken against
    staleness: int  # updates between the stash and this backward
    update: UpdateResult | None  # set when this backward completed an accumulation group
    loss: torch.Tensor | None = None  # the detached loss, when the backward was given `loss_fn`
    # With `keep_gradients`: per layer of the stage, this datum's parameter gradients before
    # compensation and accumulation (empty for a frozen layer); valid until the next backward.
    gradients: tuple[tuple[torch.Tensor, ...], ...] | None = None


def output_gradient(
    output: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(loss, d loss / d output)` for a stage output, when the loss is computed elsewhere."""
    logits = output.detach().requires_grad_()
    loss = loss_fn(logits)
    (grad,) = torch.autograd.grad(loss, logits)
    return loss.detach(), grad
