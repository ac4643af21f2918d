"""The stage optimizer reproduces torch.optim bit for bit, and rejects bad settings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from executor.ledger import ByteLedger
from executor.stage import OptimizerConfig, StageRuntime, output_gradient
from executor.stage.layout import ParamLayout
from executor.stage.optim import StageOptimizer
from executor.stage.tally import Tally
from planner.errors import ValidationError
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain

CONFIGS = [
    OptimizerConfig("sgd", lr=0.1),
    OptimizerConfig("sgd", lr=0.05, momentum=0.9, weight_decay=1e-2),
    OptimizerConfig("sgd", lr=0.05, momentum=0.8, dampening=0.1),
    OptimizerConfig("sgd", lr=0.05, momentum=0.9, nesterov=True),
    OptimizerConfig("adam", lr=1e-2),
    OptimizerConfig("adam", lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-3),
]


def _torch_optimizer(cfg: OptimizerConfig, params) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        dampening=cfg.dampening,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.name}-m{c.momentum}-wd{c.weight_decay}-n{c.nesterov}")
def test_one_stage_pipeline_equals_a_plain_torch_training_loop_bit_for_bit(cfg):
    torch.manual_seed(0)
    model = linear_chain(3, 5, seed=1)
    twin = linear_chain(3, 5, seed=1)
    plan = Plan("oracle", (0, 3), (WorkerConfig.default(0, 1),), default_placement(1, 1), 1.0)
    stage = StageRuntime(model, plan, 0, cfg)
    opt = _torch_optimizer(cfg, twin.parameters())
    for i in range(12):
        x, y = torch.randn(3, 5), torch.randint(0, 5, (3,))
        out = stage.forward(0, i, x).output
        stage.backward(0, i, output_gradient(out, lambda z, y=y: F.cross_entropy(z, y))[1])
        opt.zero_grad()
        F.cross_entropy(twin(x), y).backward()
        opt.step()
    for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    assert stage.current_version == 12


def test_optimizer_state_is_flat_and_in_the_ledger():
    lin = nn.Linear(4, 3)  # 15 parameters
    layout = ParamLayout([lin])
    ledger = ByteLedger()
    opt = StageOptimizer(OptimizerConfig("adam"), layout, Tally(ledger))
    flat = layout.pack_initial()
    assert ledger.held("optimizer") == 0  # allocated lazily, like torch.optim
    opt.step(layout.chunks(flat), layout.chunks(torch.ones(15)), chunked=True)
    assert ledger.held("optimizer") == opt.state_bytes == 2 * 15 * 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "rmsprop"}, "optimizer name must be one of adam, sgd"),
        ({"lr": 0.0}, "optimizer lr must be > 0, got 0.0"),
        ({"lr": float("nan")}, "optimizer lr must be finite and > 0, got nan"),
        ({"momentum": 1.0}, "momentum"),
        ({"nesterov": True}, "nesterov"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"name": "adam", "betas": (0.9, 1.0)}, "betas"),
    ],
)
def test_bad_optimizer_settings_are_refused_with_the_field_named(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        OptimizerConfig(**kwargs).validate()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.name}-m{c.momentum}-wd{c.weight_decay}-n{c.nesterov}")
@pytest.mark.parametrize("chunked", [False, True])
def test_both_gradient_forms_step_exactly_like_torch_optim(cfg, chunked):
    twin = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3))
    ours = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3))
    ours.load_state_dict(twin.state_dict())
    layout = ParamLayout(list(ours))
    flat = layout.pack_initial()
    opt = StageOptimizer(cfg, layout, Tally(ByteLedger()))
    reference = _torch_optimizer(cfg, twin.parameters())
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=gen) for p in twin.parameters()]
        for p, g in zip(twin.parameters(), grads, strict=True):
            p.grad = g.clone()
        reference.step()
        if chunked:
            opt.step(layout.chunks(flat), layout.chunks(torch.cat([g.reshape(-1) for g in grads])), chunked=True)
        else:
            opt.step(layout.views(flat), grads, chunked=False)
    assert torch.equal(flat, torch.cat([p.detach().reshape(-1) for p in twin.parameters()]))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.name}-m{c.momentum}-wd{c.weight_decay}-n{c.nesterov}")
def test_the_learners_torch_optimizer_has_every_setting_the_stage_steps_with(cfg):
    params = list(nn.Linear(3, 2).parameters())
    built, reference = cfg.build(params), _torch_optimizer(cfg, params)
    assert type(built) is type(reference)
    assert {k: v for k, v in built.param_groups[0].items() if k != "params"} == {
        k: v for k, v in reference.param_groups[0].items() if k != "params"
    }


def test_the_default_is_ferret_runs_adam_and_a_bare_stage_uses_plain_sgd():
    assert (OptimizerConfig().name, OptimizerConfig().lr) == ("adam", 1e-3)
    plan = Plan("oracle", (0, 3), (WorkerConfig.default(0, 1),), default_placement(1, 1), 1.0)
    assert StageRuntime(linear_chain(3, 5, seed=1), plan, 0).optimizer.config == OptimizerConfig(name="sgd")
