"""Compensation efficacy (SPEC §5) and the curvature compensators `hvp` and `adam-fisher`.

On a one-stage pipeline with two workers, datum 0's backward comes after datum 1's update, so
its gradient is stale by one. With a loss quadratic in the weights the gradient is linear in
them and the Hessian-vector step is exact: `hvp` has efficacy 1, `none` 0.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from executor.compensation import CompensationConfig, EfficacyLog, build_compensator, efficacy_sample
from executor.stage import OptimizerConfig, StageRuntime
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain
from tests.executor.stage.schedules import async_1f1b, drive

WIDTH = 4


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_efficacy_is_one_for_a_perfect_compensator_zero_for_none_negative_when_harmful():
    stale, latest = t(1.0, 0.0), t(0.0, 1.0)
    assert efficacy_sample(stale, latest, latest, 2).efficacy == 1.0
    assert efficacy_sample(stale, stale, latest, 2).efficacy == 0.0
    assert efficacy_sample(stale, t(2.0, -1.0), latest, 2).efficacy < 0
    half = efficacy_sample(stale, t(0.5, 0.5), latest, 2)
    assert half.efficacy == pytest.approx(0.5) and half.stale_error == pytest.approx(2**0.5)
    assert efficacy_sample(latest, latest, latest, 1) is None  # nothing to remove: undefined


def test_the_log_samples_every_nth_stale_backward_starting_with_the_first():
    log = EfficacyLog(3)
    assert [log.due() for _ in range(7)] == [True, False, False, True, False, False, True]
    assert not any(EfficacyLog(0).due() for _ in range(5))


def _stale_pair(compensation: str, optimizer: str = "sgd", loss=None, efficacy_every: int = 1):
    """One stage, two workers; returns the stage after datum 0's backward, stale by one."""
    model = linear_chain(1, WIDTH, seed=2)
    workers = tuple(WorkerConfig.default(n, 1) for n in range(2))
    plan = Plan("ferret", (0, 1), workers, default_placement(2, 1), 1.0)
    stage = StageRuntime(
        model, plan, 0, OptimizerConfig(optimizer, lr=0.05), CompensationConfig(compensation), None, efficacy_every
    )
    gen = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(1, WIDTH, generator=gen), torch.randn(1, WIDTH, generator=gen)
    loss = loss or (lambda z: (z - 1.0).square().sum())
    for step in range(3):  # a few rounds so that Adam has a second moment
        stage.forward(0, 2 * step, x0)
        stage.forward(1, 2 * step + 1, x1)
        stage.backward(1, 2 * step + 1, loss_fn=loss)
        assert stage.backward(0, 2 * step, loss_fn=loss).staleness == 1
    return stage


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_hvp_is_exact_on_a_quadratic_so_its_efficacy_is_one(optimizer):
    stage = _stale_pair("hvp", optimizer)
    samples = stage.efficacy.samples
    assert len(samples) == 3
    assert all(s.efficacy == pytest.approx(1.0, abs=1e-4) for s in samples)
    assert all(s.stale_error > 1e-3 for s in samples)  # there was an error to remove


def test_none_has_efficacy_zero_and_iter_fisher_as_specified_next_to_nothing():
    assert all(s.efficacy == 0.0 for s in _stale_pair("none").efficacy.samples)
    iter_fisher = _stale_pair("iter-fisher").efficacy.summary()
    assert iter_fisher["samples"] == 3 and abs(iter_fisher["efficacy_median"]) < 0.2


def test_hvp_removes_most_of_the_error_under_cross_entropy():
    target = torch.tensor([2])
    stage = _stale_pair("hvp", loss=lambda z: F.cross_entropy(z, target))
    assert stage.efficacy.summary()["efficacy_median"] > 0.8


def test_adam_fisher_adds_the_bias_corrected_second_moment_times_the_weight_change():
    class Probe:
        has_second_moment = True

        def second_moment(self):
            return t(4.0, 0.25)

    comp = build_compensator(CompensationConfig("adam-fisher"), 2, torch.float64)
    comp.bind(Probe())
    out = comp.compensate(t(1.0, -1.0), [t(0.0, 0.0), t(0.5, 2.0)], 1)
    assert out.tolist() == [1.0 + 4.0 * 0.5, -1.0 + 0.25 * 2.0]


def test_adam_fisher_reads_the_stage_optimizers_moment_and_refuses_sgd():
    stage = _stale_pair("adam-fisher", "adam")
    v = stage.optimizer._state[1] / (1 - 0.999**stage.optimizer.steps)
    assert torch.equal(stage.second_moment(), v)
    with pytest.raises(ValueError, match="adam-fisher.*adam optimizer"):
        _stale_pair("adam-fisher", "sgd")


def test_measuring_efficacy_leaves_the_run_bit_identical():
    def run(every: int):
        P, N, n = 3, 2, 30
        model = linear_chain(3, WIDTH, seed=4)
        plan = Plan(
            "ferret", (0, 1, 2, 3), tuple(WorkerConfig.default(k, P) for k in range(N)), default_placement(N, P), 1.0
        )
        opt, comp = OptimizerConfig("adam", lr=1e-2), CompensationConfig("hvp")
        stages = [StageRuntime(model, plan, j, opt, comp, None, every) for j in range(P)]
        gen = torch.Generator().manual_seed(5)
        X, Y = torch.randn(n, 1, WIDTH, generator=gen), torch.randint(0, WIDTH, (n, 1), generator=gen)
        drive(stages, async_1f1b(P, N, n, tf=1, tb=2, td=1), X.__getitem__, lambda s, z: F.cross_entropy(z, Y[s]))
        return [p.detach().clone() for p in model.parameters()], stages

    (plain, _), (measured, stages) = run(0), run(1)
    assert all(torch.equal(a, b) for a, b in zip(plain, measured, strict=True))
    assert sum(len(s.efficacy.samples) for s in stages) > 5
    assert all(s.held_by_category() == t_.held_by_category() for s, t_ in zip(stages, run(0)[1], strict=True))
