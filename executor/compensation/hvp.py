"""`hvp`: the first-order Taylor step with the exact curvature, g + H(θ_stash)·(θ_now − θ_stash).

H is the Hessian of the datum's own stage graph at the stash — `⟨output, grad_output⟩` below
the last stage, the loss at it — and `H·Δθ` comes from one double-backward through that graph
(the stage builds it with `create_graph` for this compensator; `StageProbe.hvp`). No
approximation of H and no λ: it is exact to first order in Δθ for the gradient the stage can
see (the same input, the same gradient from above). Costs one extra backward per stale
gradient; holds no state between calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from executor.compensation.base import CompensationConfig, Compensator, StageProbe
from executor.compensation.registry import register_compensator


class HessianVector(Compensator):
    """`g + H·(θ_now − θ_then)` with `H·v` from the bound stage's double-backward (`StageProbe.hvp`);
    no state, no λ."""

    name = "hvp"
    needs_hvp = True

    def __init__(self) -> None:
        self._probe: StageProbe | None = None

    def bind(self, probe: StageProbe) -> None:
        self._probe = probe

    def compensate(self, grad: torch.Tensor, versions: Sequence[torch.Tensor], staleness: int) -> torch.Tensor:
        if self._probe is None:
            raise RuntimeError("hvp compensation needs its stage (bind) for the Hessian-vector product")
        return grad.add_(self._probe.hvp(versions[-1] - versions[0]))


@register_compensator("hvp")
def build(config: CompensationConfig, numel: int, dtype: torch.dtype, device: torch.device) -> Compensator:
    return HessianVector()
