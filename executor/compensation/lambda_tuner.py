"""λ auto-tuning of Ferret's Alg. 1 (F10–F12): online least squares for the Fisher scale.

Two EMA buffers with coefficient α: `v_r` of the stale gradients and `v_a` of
`g ⊙ g ⊙ (θ^t − θ^{t−1})`, where θ^{t−1} is the version the gradient was computed at and θ^t
the one right after it. Each call takes one gradient step on
`‖Δv_r − λ·v_a‖² + ν·λ²` with `Δv_r = (1−α)(g − v_r)` — the change of the gradient average
regressed on the Fisher-predicted change — then updates the buffers, in Alg. 1's order.
λ is one scalar per stage.
"""

from __future__ import annotations

import torch


class LambdaTuner:
    """One stage's λ of Alg. 1, tuned online (see the module docstring); `lam` is its current value.

    Holds two EMA buffers the size of the stage's parameters; `eta` must be positive (`ValueError`).
    """

    def __init__(
        self, lam0: float, nu: float, alpha: float, eta: float, numel: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        if eta <= 0:
            raise ValueError("LambdaTuner needs eta_lambda > 0; with eta_lambda = 0 λ stays fixed and needs no tuner")
        self.lam = lam0
        self.nu = nu
        self.alpha = alpha
        self.eta = eta
        self.v_r = torch.zeros(numel, dtype=dtype, device=device)
        self.v_a = torch.zeros(numel, dtype=dtype, device=device)

    def update(self, grad: torch.Tensor, step: torch.Tensor) -> float:
        """One tuning step with stale gradient `grad` and `step = θ^t − θ^{t−1}`; returns λ."""
        a = self.alpha
        delta_v_r = torch.sub(grad, self.v_r).mul_(1 - a)
        residual = delta_v_r.sub_(self.v_a, alpha=self.lam)
        # d/dλ (‖Δv_r − λ v_a‖² + ν λ²) = −2⟨Δv_r − λ v_a, v_a⟩ + 2νλ
        slope = -2.0 * float(torch.dot(residual, self.v_a)) + 2.0 * self.nu * self.lam
        self.lam -= self.eta * slope
        self.v_r.lerp_(grad, 1 - a)  # v_r ← α v_r + (1−α) g
        fisher_change = torch.mul(grad, grad, out=residual).mul_(step)  # reuse the scratch
        self.v_a.lerp_(fisher_change, 1 - a)
        return self.lam

    @property
    def state_bytes(self) -> int:
        return 2 * self.v_r.numel() * self.v_r.element_size()
