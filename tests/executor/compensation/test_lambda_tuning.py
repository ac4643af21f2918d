"""λ auto-tuning (Alg. 1) moves λ to the least-squares optimum of its own objective.

On a stationary synthetic sequence of (stale gradient, step) pairs the EMA buffers do not
depend on λ, so the objective Σ_t ‖Δv_r(t) − λ v_a(t−1)‖² + ν λ² has the closed-form minimiser
λ* = Σ⟨Δv_r, v_a⟩ / (Σ‖v_a‖² + T ν), computed here independently of the tuner. Alg. 1 takes
one stochastic-gradient step per update, so λ fluctuates around λ*; its running mean settles.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from executor.compensation.lambda_tuner import LambdaTuner

ALPHA, NU, ETA, DIM = 0.9, 2e-6, 2e-3, 16


def _sequence(length: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Gradients that partly follow the Fisher model: g_t = noise + 2·g_{t−1}²·step_{t−1}."""
    gen = torch.Generator().manual_seed(seed)
    prev = torch.zeros(DIM, dtype=torch.float64)
    prev_step = torch.zeros(DIM, dtype=torch.float64)
    out = []
    for _ in range(length):
        g = (0.5 * torch.randn(DIM, dtype=torch.float64, generator=gen) + 2.0 * prev * prev * prev_step).clamp(-3, 3)
        step = 0.5 * torch.randn(DIM, dtype=torch.float64, generator=gen)
        out.append((g, step))
        prev, prev_step = g, step
    return out


def _least_squares(sequence) -> float:
    v_r = torch.zeros(DIM, dtype=torch.float64)
    v_a = torch.zeros(DIM, dtype=torch.float64)
    num = den = 0.0
    for g, step in sequence:
        delta = (1 - ALPHA) * (g - v_r)
        num += float(delta @ v_a)
        den += float(v_a @ v_a) + NU
        v_r = ALPHA * v_r + (1 - ALPHA) * g
        v_a = ALPHA * v_a + (1 - ALPHA) * g * g * step
    return num / den


@pytest.mark.parametrize("lam0", [3.0, 0.2, -2.0])
def test_lambda_moves_to_the_least_squares_optimum_from_either_side(lam0):
    sequence = _sequence(4000)
    target = _least_squares(sequence)
    tuner = LambdaTuner(lam0, NU, ALPHA, ETA, DIM, torch.float64, torch.device("cpu"))
    trajectory = [tuner.update(g, step) for g, step in sequence]
    settled = statistics.fmean(trajectory[len(trajectory) // 2 :])
    assert abs(settled - target) < 0.1 * abs(target)
    assert abs(settled - target) < 0.1 * abs(lam0 - target)


def test_the_first_update_is_the_hand_computed_gradient_step():
    # Buffers start at zero, so the first step only sees ν: λ ← λ − η·2νλ.
    tuner = LambdaTuner(0.5, 0.1, ALPHA, 0.2, 2, torch.float64, torch.device("cpu"))
    g, step = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([0.5, -1.0], dtype=torch.float64)
    assert tuner.update(g, step) == pytest.approx(0.5 - 0.2 * 2 * 0.1 * 0.5)
    # Now v_r = 0.1·g = (0.1, 0.2), v_a = 0.1·g²·step = (0.05, −0.4). Second call, same g:
    # Δv_r = 0.1·(g − v_r) = (0.09, 0.18); r = Δv_r − λ v_a; slope = −2⟨r, v_a⟩ + 2νλ.
    lam = 0.48  # after the first call
    r = torch.tensor([0.09 - lam * 0.05, 0.18 + lam * 0.4], dtype=torch.float64)
    slope = -2 * float(r @ torch.tensor([0.05, -0.4], dtype=torch.float64)) + 2 * 0.1 * lam
    assert tuner.update(g, step) == pytest.approx(lam - 0.2 * slope)
