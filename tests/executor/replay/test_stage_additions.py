"""The two StageRuntime calls the replay executor added: `flush` and `stashed_parameters`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from executor.models.base import LayeredModel
from executor.stage import OptimizerConfig, StageRuntime
from tests.executor.replay import fixtures


def one_linear(seed: int = 0) -> LayeredModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = nn.Linear(3, 2)
    return LayeredModel("one", [("fc", layer)], (3,), 2)


def loss_of(target: torch.Tensor):
    return lambda out: ((out - target) ** 2).sum()


def test_flush_applies_the_mean_of_a_partial_group():
    model = one_linear()
    plan = fixtures.plan((0, 1), accumulation=(3,))
    stage = StageRuntime(model, plan, 0, OptimizerConfig("sgd", lr=0.1))
    w0 = model.layers[0].weight.detach().clone()
    b0 = model.layers[0].bias.detach().clone()
    xs = [torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[-1.0, 0.5, 2.0]])]
    targets = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    grads_w, grads_b = [], []
    for i, (x, t) in enumerate(zip(xs, targets, strict=True)):
        out = x @ w0.T + b0
        grads_w.append(2 * (out - t).T @ x)  # d/dW of ‖xWᵀ + b − t‖²
        grads_b.append(2 * (out - t).sum(0))
        stage.forward(0, i, x)
        assert stage.backward(0, i, loss_fn=loss_of(t)).update is None  # 2 of 3: the group stays open
    assert stage.open_groups == 1
    update = stage.flush(0)
    assert update is not None and update.samples == (0, 1) and update.version == 0
    assert stage.current_version == 1 and stage.open_groups == 0
    assert stage.held_bytes("accumulation") == 0
    torch.testing.assert_close(model.layers[0].weight.detach(), w0 - 0.1 * (grads_w[0] + grads_w[1]) / 2)
    torch.testing.assert_close(model.layers[0].bias.detach(), b0 - 0.1 * (grads_b[0] + grads_b[1]) / 2)
    assert stage.flush(0) is None  # nothing left to apply


def test_stashed_parameters_are_the_forward_version_not_the_current_one():
    model = one_linear()
    plan = fixtures.plan((0, 1), workers=2)
    stage = StageRuntime(model, plan, 0, OptimizerConfig("sgd", lr=0.1))
    x = torch.tensor([[1.0, 2.0, 3.0]])
    stage.forward(0, 0, x)
    stashed = [p.detach().clone() for p in stage.stashed_parameters(0, 0)]
    stage.forward(1, 1, x)
    stage.backward(1, 1, loss_fn=loss_of(torch.zeros(1, 2)))  # worker 1 moves the weights on
    after = stage.stashed_parameters(0, 0)
    assert all(torch.equal(a, b) for a, b in zip(after, stashed, strict=True))
    assert not torch.equal(model.layers[0].weight.detach(), stashed[0])
    assert [tuple(p.shape) for p in after] == [(2, 3), (2,)]
    stage.backward(0, 0, loss_fn=loss_of(torch.zeros(1, 2)))
    with pytest.raises(RuntimeError, match="stored nothing"):
        stage.stashed_parameters(0, 0)
