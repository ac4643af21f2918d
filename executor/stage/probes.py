"""Extra gradient computations a stage makes for its compensator and its efficacy measurement.

`hessian_vector` is `StageProbe.hvp` (docs/executor.md): the double-backward through a stale
gradient built with `create_graph`. `gradient_at` is the datum's gradient at other weights (the
current ones) from the kept stage input — compensation efficacy's `g_latest` — computed so that
the run does not see it: the random state and the running statistics are restored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from executor.stage.statistics import statistics_kept


def hessian_vector(
    grads: Sequence[torch.Tensor], params: Sequence[nn.Parameter], views: Sequence[torch.Tensor], vector: torch.Tensor
) -> torch.Tensor:
    """`H · vector` (flat), where `grads` are the gradients of `params` with their graph and
    `views` are `vector`'s per-parameter views. A gradient that does not depend on the weights
    (one linear layer with a fixed gradient from above) contributes 0."""
    pairs = [(g, p, v) for g, p, v in zip(grads, params, views, strict=True) if g.requires_grad]
    if not pairs:
        return vector.new_zeros(sum(p.numel() for p in params))
    outs, ins, vs = zip(*pairs, strict=True)
    hv = torch.autograd.grad(outs, ins, vs, retain_graph=True, allow_unused=True, materialize_grads=True)
    by_param = {id(p): h for p, h in zip(ins, hv, strict=True)}
    zero = torch.zeros((), dtype=vector.dtype, device=vector.device)
    return torch.cat([by_param.get(id(p), zero.expand(p.shape)).reshape(-1) for p in params])


def gradient_at(
    run: Callable[[torch.Tensor], torch.Tensor],
    params: Sequence[nn.Parameter],
    inp: torch.Tensor,
    grad_output: torch.Tensor | None,
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None,
    statistics: list[tuple[nn.Module, str]],
) -> torch.Tensor:
    """The flat gradient of `params` (installed in the modules `run` calls) for one datum: the
    stage re-run on `inp`, differentiated with `grad_output` or through `loss_fn`."""
    devices = [] if inp.device.type == "cpu" else [inp.device]
    with torch.random.fork_rng(devices=devices), statistics_kept(statistics), torch.enable_grad():
        out = run(inp.detach())
        root = out if loss_fn is None else loss_fn(out)
        grads = torch.autograd.grad(root, params, grad_output, allow_unused=True, materialize_grads=True)
    return torch.cat([g.reshape(-1) for g in grads])
