"""A gradient with NaN or inf never reaches the weights when the stage guards against it."""

from __future__ import annotations

import pytest
import torch

from executor.stage import StageRuntime
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain


def _stage(guard: bool, accumulation: int = 1) -> StageRuntime:
    model = linear_chain(1, 3)
    plan = Plan("ferret", (0, 1), (WorkerConfig(0, False, (accumulation,), (0,)),), default_placement(1, 1), 1.0)
    stage = StageRuntime(model, plan, 0)
    stage.guard_nonfinite = guard
    return stage


def _train(stage: StageRuntime, sample: int, x: torch.Tensor):
    stage.forward(0, sample, x)
    return stage.backward(0, sample, loss_fn=lambda out: out.sum())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("accumulation", [1, 2])
def test_a_nonfinite_gradient_is_skipped_and_counted(bad, accumulation):
    stage = _stage(True, accumulation)
    before = stage.versions.current.flat.clone()
    for sample in range(accumulation - 1):
        _train(stage, sample, torch.ones(1, 3))
    result = _train(stage, accumulation - 1, torch.full((1, 3), bad))
    assert result.update is not None and result.update.skipped
    assert stage.skipped_updates == 1 and stage.current_version == 0
    assert torch.equal(stage.versions.current.flat, before)
    good = _train(stage, accumulation, torch.ones(1, 3))  # the stage goes on learning
    if accumulation == 1:
        assert good.update is not None and not good.update.skipped and stage.current_version == 1
    assert torch.isfinite(stage.versions.current.flat).all()


def test_without_the_guard_the_nan_lands():
    stage = _stage(False)
    result = _train(stage, 0, torch.full((1, 3), float("nan")))
    assert result.update is not None and not result.update.skipped
    assert torch.isnan(stage.versions.current.flat).any()
