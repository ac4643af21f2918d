"""`iter-fisher` (Ferret F9 + Alg. 1): bring g forward one version at a time.

`g ← A(g, θ^{s+k+1}, θ^{s+k})` for every intermediate version from the stash `s` to the
current one, so the diagonal-Fisher curvature is re-evaluated at each step of the path rather
than once at the stash (Fisher). Before that, with `eta_lambda > 0`, λ takes one auto-tuning
step (lambda_tuner.py); with `eta_lambda = 0` λ stays at `lambda0` and no buffer exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch

from executor.compensation.base import CompensationConfig, Compensator, fisher_approx_
from executor.compensation.lambda_tuner import LambdaTuner
from executor.compensation.registry import register_compensator


class IterFisher(Compensator):
    """`iter-fisher`: Alg. 1, a Fisher step (F9) per intermediate version from the stash to now.

    Needs the whole version chain (`staleness + 1` tensors, else `RuntimeError`); λ is `lam0`, or the
    `LambdaTuner`'s current value when auto-tuning is on.
    """

    name = "iter-fisher"
    needs_chain = True

    def __init__(self, lam0: float, tuner: LambdaTuner | None) -> None:
        self._lam0 = lam0
        self.tuner = tuner
        self.weight_buffers = 0 if tuner is None else 2  # the tuner's two EMAs

    @property
    def lam(self) -> float:
        return self._lam0 if self.tuner is None else self.tuner.lam

    def compensate(self, grad: torch.Tensor, versions: Sequence[torch.Tensor], staleness: int) -> torch.Tensor:
        if len(versions) != staleness + 1:
            raise RuntimeError(f"iter-fisher needs the whole chain: {staleness + 1} versions, got {len(versions)}")
        if self.tuner is not None:
            self.tuner.update(grad, versions[1] - versions[0])
        lam = self.lam
        for older, newer in pairwise(versions):
            grad = fisher_approx_(grad, newer, older, lam)
        return grad

    @property
    def state_bytes(self) -> int:
        return 0 if self.tuner is None else self.tuner.state_bytes


@register_compensator("iter-fisher")
def build(config: CompensationConfig, numel: int, dtype: torch.dtype, device: torch.device) -> Compensator:
    tuner = None
    if config.eta_lambda > 0:
        tuner = LambdaTuner(config.lambda0, config.nu, config.alpha, config.eta_lambda, numel, dtype, device)
    return IterFisher(config.lambda0, tuner)
