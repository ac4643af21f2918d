"""On a quadratic with a known Hessian, Fisher-based compensation beats applying stale gradients.

f(θ) = ½ Σ h_i (θ_i − θ*_i)², ∇f(θ) = h ⊙ (θ − θ*). SGD walks θ⁰ → θ^τ; the stale gradient
∇f(θ⁰) is compensated to θ^τ and compared with the true ∇f(θ^τ). The diagonal-Fisher model
λ·g⊙g stands in for the Hessian h; the start is placed where λ·g_i² ≈ h_i (the regime the
approximation is meant for), with ±20 % spread so the match is not exact.
"""

from __future__ import annotations

import itertools

import torch

from executor.compensation import CompensationConfig, build_compensator

LAM, LR, DIM = 0.2, 0.1, 50


def _problem():
    gen = torch.Generator().manual_seed(0)
    h = torch.empty(DIM, dtype=torch.float64).uniform_(0.5, 2.0, generator=gen)
    star = torch.randn(DIM, dtype=torch.float64, generator=gen)
    sign = torch.where(torch.rand(DIM, generator=gen) < 0.5, -1.0, 1.0).double()
    spread = torch.empty(DIM, dtype=torch.float64).uniform_(0.8, 1.2, generator=gen)
    theta = [star + sign * spread / torch.sqrt(LAM * h)]

    def grad(th: torch.Tensor) -> torch.Tensor:
        return h * (th - star)

    for _ in range(6):
        theta.append(theta[-1] - LR * grad(theta[-1]))
    return theta, grad


def test_fisher_and_iter_fisher_reduce_the_error_and_iter_fishers_advantage_grows_with_staleness():
    theta, grad = _problem()
    stale = grad(theta[0])
    fisher = build_compensator(CompensationConfig("fisher", lambda0=LAM), DIM, torch.float64)
    iterative = build_compensator(CompensationConfig("iter-fisher", lambda0=LAM, eta_lambda=0.0), DIM, torch.float64)
    advantages = []
    for tau in range(1, 6):
        true = grad(theta[tau])
        err_none = (stale - true).norm()
        err_fisher = (fisher.compensate(stale.clone(), [theta[0], theta[tau]], tau) - true).norm()
        err_iter = (iterative.compensate(stale.clone(), theta[: tau + 1], tau) - true).norm()
        assert err_fisher < 0.3 * err_none
        assert err_iter < 0.4 * err_none
        if tau == 1:
            assert err_iter == err_fisher  # one step: the same single application of A
        advantages.append(float(err_none - err_iter))
    assert all(b > a for a, b in itertools.pairwise(advantages)), advantages


def test_compensation_with_the_wrong_sign_of_lambda_makes_it_worse():
    # The test above can fail: a negative λ pushes the gradient the wrong way.
    theta, grad = _problem()
    stale, true = grad(theta[0]), grad(theta[3])
    wrong = build_compensator(CompensationConfig("iter-fisher", lambda0=-LAM, eta_lambda=0.0), DIM, torch.float64)
    assert (wrong.compensate(stale.clone(), theta[:4], 3) - true).norm() > (stale - true).norm()
