"""`adam-fisher`: the Fisher step with the Fisher diagonal at its proper scale,
g + v̂ ⊙ (θ_now − θ_stash), where v̂ is Adam's bias-corrected second moment.

Iter-Fisher uses the one datum's `g ⊙ g` times λ⁰ = 0.2 as the Hessian diagonal. Adam already
keeps `v̂ = E[g ⊙ g]` over the stream (β₂ = 0.999: about the last thousand gradients), which is
the empirical Fisher diagonal — the curvature of the expected loss, not of one datum — so here
λ is 1 and nothing is tuned. Needs Adam (a stage under SGD refuses it); before the first step
there is no estimate and the gradient is applied as it is. Holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from executor.compensation.base import CompensationConfig, Compensator, StageProbe
from executor.compensation.registry import register_compensator


class AdamFisher(Compensator):
    """`g + v̂ ⊙ (θ_now − θ_then)`, `v̂` the stage optimizer's bias-corrected second moment (bound
    stage; refuses a stage whose optimizer keeps none). Holds no state of its own."""

    name = "adam-fisher"

    def __init__(self) -> None:
        self._probe: StageProbe | None = None

    def bind(self, probe: StageProbe) -> None:
        if not probe.has_second_moment:
            raise ValueError("compensation 'adam-fisher' reads Adam's second moment: use the adam optimizer")
        self._probe = probe

    def compensate(self, grad: torch.Tensor, versions: Sequence[torch.Tensor], staleness: int) -> torch.Tensor:
        if self._probe is None:
            raise RuntimeError("adam-fisher compensation needs its stage (bind) for the second moment")
        fisher = self._probe.second_moment()
        if fisher is None:
            return grad
        return grad.addcmul_(fisher, torch.sub(versions[-1], versions[0]))


@register_compensator("adam-fisher")
def build(config: CompensationConfig, numel: int, dtype: torch.dtype, device: torch.device) -> Compensator:
    return AdamFisher()
