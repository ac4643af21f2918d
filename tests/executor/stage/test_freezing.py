"""A frozen prefix of a stage's layers (aL-SAR, per datum): what runs, what moves, what the stage reports."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from executor.compensation import CompensationConfig
from executor.stage import OptimizerConfig, StageRuntime
from executor.stage.checkpoint import load_stage_state, stage_state
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain
from tests.executor.stage.test_optim import CONFIGS, _torch_optimizer

WIDTH = 4
LAYERS = 4
FROZEN = [0, 2, 0, 3, 1, 0, 3, 2, 0, 1, 3, 0]  # frozen layers per step: every parameter skips some steps


def _plan(partition, accumulation=1):
    P = len(partition) - 1
    worker = WorkerConfig(0, False, (accumulation,) * P, (0,) * P)
    return Plan("ferret", tuple(partition), (worker,), default_placement(1, P), 1.0)


def _loss(y):
    return lambda z: F.cross_entropy(z, y)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.name}-m{c.momentum}-wd{c.weight_decay}-n{c.nesterov}")
def test_a_one_stage_pipeline_with_frozen_prefixes_equals_torch_optim_skipping_frozen_parameters(cfg):
    """The sequential learner's freezing: backward into layers n.. only; torch.optim skips the
    parameters without a gradient (their own step counts: Adam's bias correction, SGD's first
    momentum). The stage reproduces it bit for bit, weights and optimizer moments."""
    torch.manual_seed(0)
    model = linear_chain(LAYERS, WIDTH, seed=1)
    twin = linear_chain(LAYERS, WIDTH, seed=1)
    stage = StageRuntime(model, _plan((0, LAYERS)), 0, cfg)
    opt = _torch_optimizer(cfg, twin.parameters())
    for i, frozen in enumerate(FROZEN):
        x, y = torch.randn(3, WIDTH), torch.randint(0, WIDTH, (3,))
        stage.forward(0, i, x)
        result = stage.backward(0, i, loss_fn=_loss(y), frozen_layers=frozen)
        assert result.ran and result.update is not None and result.grad_input is None
        opt.zero_grad(set_to_none=True)
        suffix = [p for layer in twin.layers[frozen:] for p in layer.parameters()]
        torch.autograd.backward(F.cross_entropy(twin(x), y), inputs=suffix)
        opt.step()
    for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    state = [opt.state[p] for p in twin.parameters()]
    keys = ["exp_avg", "exp_avg_sq"] if cfg.name == "adam" else ["momentum_buffer"] if cfg.momentum else []
    for ours, key in zip(stage.optimizer._state, keys, strict=True):
        assert torch.equal(ours, torch.cat([s[key].flatten() for s in state]))
    if cfg.name == "adam":
        assert stage.optimizer.param_steps == [int(s["step"]) for s in state]


def test_frozen_layers_run_no_backward_and_keep_weights_and_moments():
    model = linear_chain(LAYERS, WIDTH, seed=2)
    stage = StageRuntime(model, _plan((0, LAYERS)), 0, OptimizerConfig("adam", lr=0.1))
    x, y = torch.randn(2, WIDTH), torch.tensor([0, 1])
    stage.forward(0, 0, x)
    stage.backward(0, 0, loss_fn=_loss(y))  # every layer once: the moments are non-zero
    before = [p.detach().clone() for p in model.parameters()]
    moments = [t.clone() for t in stage.optimizer._state]
    calls: list[int] = []
    hooks = [
        layer.register_full_backward_pre_hook(lambda m, go, i=i: calls.append(i))
        for i, layer in enumerate(model.layers)
    ]
    stage.forward(0, 1, x)
    stage.backward(0, 1, loss_fn=_loss(y), frozen_layers=2)
    for h in hooks:
        h.remove()
    assert sorted(calls) == [2, 3]  # no backward op of layers 0 and 1 ran
    after = list(model.parameters())
    frozen = sum(len(list(layer.parameters())) for layer in model.layers[:2])
    assert all(torch.equal(a, b) for a, b in zip(before[:frozen], after[:frozen], strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(before[frozen:], after[frozen:], strict=True))
    spans = stage.layout.chunks(stage.optimizer._state[1])
    assert all(torch.equal(m, n) for m, n in zip(stage.layout.chunks(moments[1])[:frozen], spans[:frozen], strict=True))
    assert stage.optimizer.param_steps == [1] * frozen + [2] * (len(after) - frozen)


def test_a_wholly_frozen_stage_is_an_omission_and_a_partly_frozen_one_passes_no_gradient_down():
    model = linear_chain(LAYERS, WIDTH, seed=3)
    bottom, top = (StageRuntime(model, _plan((0, 2, LAYERS)), j) for j in range(2))
    x, y = torch.randn(1, WIDTH), torch.tensor([2])
    top.forward(0, 0, bottom.forward(0, 0, x).output)
    partly = top.backward(0, 0, loss_fn=_loss(y), frozen_layers=1)
    assert partly.ran and partly.grad_input is None and partly.update is not None
    wholly = bottom.backward(0, 0, frozen_layers=2)
    assert not wholly.ran and wholly.update is None and bottom.in_flight == 0
    assert bottom.held_bytes("activations") == 0 and bottom.current_version == 0
    assert top.current_version == 1


def test_accumulation_averages_each_parameter_over_the_data_that_trained_it():
    """Group of two: datum 0 trains every layer, datum 1 freezes layer 0. Layer 0 steps with datum
    0's gradient alone, layers 1.. with the mean of both (plain SGD, lr 1: θ' = θ − g)."""
    model = linear_chain(2, WIDTH, seed=4)
    reference = linear_chain(2, WIDTH, seed=4)
    stage = StageRuntime(model, _plan((0, 2), accumulation=2), 0, OptimizerConfig("sgd", lr=1.0))
    xs, ys = torch.randn(2, 1, WIDTH), torch.tensor([[1], [3]])
    grads = []
    for i, frozen in enumerate((0, 1)):
        reference.zero_grad()
        F.cross_entropy(reference(xs[i]), ys[i]).backward()
        grads.append([p.grad.clone() if layer >= frozen else None for layer, p in _layered(reference)])
        stage.forward(0, i, xs[i])
        result = stage.backward(0, i, loss_fn=_loss(ys[i]), frozen_layers=frozen)
    assert result.update is not None and result.update.samples == (0, 1)
    for k, ((layer, p), start) in enumerate(zip(_layered(model), _layered(reference), strict=True)):
        contributions = [g[k] for g in grads if g[k] is not None]
        expected = start[1].detach() - sum(contributions) / len(contributions)
        assert torch.allclose(p, expected, atol=1e-6), layer


def _layered(model):
    return [(i, p) for i, layer in enumerate(model.layers) for p in layer.parameters()]


def test_kept_gradients_are_the_datums_own_before_compensation():
    """Per layer of the stage, the gradient autograd computed — also when a stale gradient is
    then compensated in the flat buffer (the kept copy is taken before)."""
    model = linear_chain(3, WIDTH, seed=5)
    twin = linear_chain(3, WIDTH, seed=5)
    stage = StageRuntime(model, _plan((0, 3)), 0, compensation=CompensationConfig("fisher", lambda0=5.0))
    x, y = torch.randn(2, WIDTH), torch.tensor([0, 3])
    stage.forward(0, 0, x)
    stage.forward(0, 1, x)  # in flight on version 0 while datum 0's update lands: staleness 1
    stage.backward(0, 0, loss_fn=_loss(y))
    F.cross_entropy(twin(x), y).backward()
    result = stage.backward(0, 1, loss_fn=_loss(y), frozen_layers=1, keep_gradients=True)
    assert result.staleness == 1 and result.gradients is not None
    assert result.gradients[0] == ()
    for layer, kept in zip(twin.layers[1:], result.gradients[1:], strict=True):
        expected = [p.grad.flatten() for p in layer.parameters()]
        assert all(torch.equal(k.flatten(), e) for k, e in zip(kept, expected, strict=True))


def test_a_checkpoint_keeps_per_parameter_steps_and_a_groups_frozen_prefixes():
    def build():
        model = linear_chain(3, WIDTH, seed=6)
        return StageRuntime(model, _plan((0, 3), accumulation=3), 0, OptimizerConfig("adam", lr=0.05))

    x, y = torch.randn(1, WIDTH), torch.tensor([1])
    straight, resumed = build(), build()
    for i, frozen in enumerate((1, 0, 2, 2)):  # one group of 3 closes, the next holds one datum
        straight.forward(0, i, x)
        straight.backward(0, i, loss_fn=_loss(y), frozen_layers=frozen)
    load_stage_state(resumed, stage_state(straight))
    assert resumed.optimizer.param_steps == straight.optimizer.param_steps == [1, 1, 1, 1, 1, 1]
    for runtime in (straight, resumed):
        runtime.forward(0, 4, x)
        runtime.backward(0, 4, loss_fn=_loss(y), frozen_layers=0)
        runtime.forward(0, 5, x)
        update = runtime.backward(0, 5, loss_fn=_loss(y)).update
        assert update is not None and update.samples == (3, 4, 5)
    assert torch.equal(straight.versions.current.flat, resumed.versions.current.flat)
    assert straight.optimizer.param_steps == [2, 2, 2, 2, 2, 2]
