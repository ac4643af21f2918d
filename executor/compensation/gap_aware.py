"""`gap-aware` (Barkai et al. 2019): divide g element-wise by max(1, |θ_now − θ_then| / C).

`C` is a per-element EMA (coefficient `gap_ema`) of the step size |Δθ| of the stage's own
optimizer steps, started at the first step's |Δθ| so that it carries no zero bias. The gap of
a gradient of staleness τ is then about τ steps' worth of movement, so each element is damped
by roughly how many of its typical steps it is behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from executor.compensation.base import CompensationConfig, Compensator
from executor.compensation.registry import register_compensator


class GapAware(Compensator):
    """`gap-aware`: divides a stale gradient element-wise by max(1, gap / C), C the step-size EMA.

    Observes every optimizer step of its stage to keep C; a stale gradient before the first observed
    step is a `RuntimeError`.
    """

    name = "gap-aware"
    observes_steps = True
    weight_buffers = 1  # the step size C

    def __init__(self, ema: float) -> None:
        self.ema = ema
        self.step_size: torch.Tensor | None = None  # C, allocated at the first observed step

    def observe_step(self, old: torch.Tensor, new: torch.Tensor) -> None:
        delta = (new - old).abs_()
        if self.step_size is None:
            self.step_size = delta
        else:
            self.step_size.mul_(self.ema).add_(delta, alpha=1 - self.ema)

    def compensate(self, grad: torch.Tensor, versions: Sequence[torch.Tensor], staleness: int) -> torch.Tensor:
        if self.step_size is None:
            raise RuntimeError("gap-aware: a stale gradient before any optimizer step was observed")
        gap = (versions[-1] - versions[0]).abs_()
        tiny = torch.finfo(gap.dtype).tiny
        ratio = gap.div_(self.step_size.clamp(min=tiny)).clamp_(min=1.0)
        return grad.div_(ratio)

    @property
    def state_bytes(self) -> int:
        c = self.step_size
        return 0 if c is None else c.numel() * c.element_size()


@register_compensator("gap-aware")
def build(config: CompensationConfig, numel: int, dtype: torch.dtype, device: torch.device) -> Compensator:
    return GapAware(config.gap_ema)
