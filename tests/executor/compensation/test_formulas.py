"""Each compensator on small vectors computed by hand, the registry and the configuration."""

from __future__ import annotations

import pytest
import torch

from executor.compensation import (
    COMPENSATORS,
    CompensationConfig,
    build_compensator,
    compensation_buffers,
    fisher_approx,
)
from planner.errors import ValidationError


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def build(name: str, numel: int = 2, **options):
    return build_compensator(CompensationConfig(name, **options), numel, torch.float64)


def test_the_registry_holds_the_compensators_of_spec_5():
    assert set(COMPENSATORS) == {"none", "step-aware", "gap-aware", "fisher", "iter-fisher", "hvp", "adam-fisher"}


def test_a_is_g_plus_lambda_g_g_delta():
    # g = (1, −2), θ_new − θ_old = (0.5, 1), λ = 0.2 → (1 + 0.2·1·0.5, −2 + 0.2·4·1)
    out = fisher_approx(t(1.0, -2.0), t(0.5, 1.0), t(0.0, 0.0), 0.2)
    assert out.tolist() == pytest.approx([1.1, -1.2])


def test_none_returns_the_gradient_untouched():
    g = t(3.0, 4.0)
    assert build("none").compensate(g, [t(0, 0), t(1, 1)], 3) is g


def test_step_aware_scales_by_one_over_tau_plus_one():
    assert build("step-aware").compensate(t(3.0, -6.0), [t(0, 0), t(1, 1)], 2).tolist() == [1.0, -2.0]


def test_fisher_is_one_application_from_the_stash_to_the_current_weights():
    # λ = 0.2, g = 1, θ: 0 → 1 in one jump: 1 + 0.2·1·1 = 1.2
    out = build("fisher", 1).compensate(t(1.0), [t(0.0), t(1.0)], 2)
    assert out.tolist() == pytest.approx([1.2])


def test_iter_fisher_walks_every_intermediate_version():
    # λ = 0.2, g = 1, θ: 0 → 0.5 → 1: g1 = 1 + 0.2·1·0.5 = 1.1; g2 = 1.1 + 0.2·1.21·0.5 = 1.221
    comp = build("iter-fisher", 1, eta_lambda=0.0)
    out = comp.compensate(t(1.0), [t(0.0), t(0.5), t(1.0)], 2)
    assert out.tolist() == pytest.approx([1.221])
    with pytest.raises(RuntimeError, match="whole chain"):
        comp.compensate(t(1.0), [t(0.0), t(1.0)], 2)


def test_gap_aware_divides_by_the_gap_in_units_of_the_average_step():
    comp = build("gap-aware", gap_ema=0.9)
    with pytest.raises(RuntimeError, match="before any optimizer step"):
        comp.compensate(t(1.0, 1.0), [t(0, 0), t(1, 1)], 1)
    comp.observe_step(t(0.0, 0.0), t(0.1, -0.2))  # C = |Δθ| = (0.1, 0.2)
    comp.observe_step(t(0.1, -0.2), t(-0.2, -0.2))  # C = 0.9·C + 0.1·(0.3, 0) = (0.12, 0.18)
    assert comp.step_size.tolist() == pytest.approx([0.12, 0.18])
    # gap = (0.6, 0.09) → ratio max(1, gap / C) = (5, 1)
    out = comp.compensate(t(1.0, 1.0), [t(0.0, 0.0), t(0.6, -0.09)], 2)
    assert out.tolist() == pytest.approx([0.2, 1.0])
    assert comp.state_bytes == 2 * 8


def test_eta_lambda_zero_keeps_lambda_fixed_and_allocates_nothing():
    fixed = build("iter-fisher", 10, eta_lambda=0.0, lambda0=0.3)
    assert fixed.state_bytes == 0 and fixed.lam == 0.3
    fixed.compensate(torch.ones(10, dtype=torch.float64), [torch.zeros(10), torch.ones(10)], 1)
    assert fixed.lam == 0.3
    tuned = build("iter-fisher", 10, eta_lambda=1e-3)
    assert tuned.state_bytes == 2 * 10 * 8  # v_r and v_a
    assert tuned.lam == 0.2  # λ⁰ default of SPEC §5


def test_defaults_follow_spec_5():
    cfg = CompensationConfig()
    assert (cfg.name, cfg.lambda0, cfg.nu, cfg.alpha, cfg.eta_lambda) == ("none", 0.2, 2e-6, 0.9, 1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "dc-asgd"}, "unknown compensation 'dc-asgd'"),
        ({"alpha": 1.0}, "alpha"),
        ({"gap_ema": -0.1}, "gap_ema"),
        ({"nu": -1.0}, "nu"),
        ({"eta_lambda": float("inf")}, "eta_lambda"),
        ({"lambda0": float("nan")}, "lambda0"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        CompensationConfig(**kwargs).validate()


class _Probe:
    """A stage with the identity as Hessian and a unit second moment."""

    has_second_moment = True

    def hvp(self, vector: torch.Tensor) -> torch.Tensor:
        return vector.clone()

    def second_moment(self) -> torch.Tensor:
        return torch.ones(5, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(COMPENSATORS))
@pytest.mark.parametrize("eta_lambda", [0.0, 1e-3])
def test_the_declared_weight_buffers_are_what_a_running_compensator_keeps(name, eta_lambda):
    # compensation_buffers (the twin's memory model of a run) must match the bytes held.
    config = CompensationConfig(name, eta_lambda=eta_lambda)
    comp = build_compensator(config, 5, torch.float64)
    comp.bind(_Probe())
    old, new = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    if comp.observes_steps:
        comp.observe_step(old, new)
    comp.compensate(torch.ones(5, dtype=torch.float64), [old, new], 1)
    assert comp.state_bytes == compensation_buffers(config) * 5 * 8
