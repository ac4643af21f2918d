"""Adaptive layer freezing (SPEC §10.2): real savings in the learner's step, and the score by hand."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from executor.ledger import ByteLedger
from executor.models import build_model
from executor.ocl.algorithms import AlgorithmConfig, AlgorithmContext, OCLAlgorithm
from executor.ocl.batch import TrainBatch
from executor.ocl.cost import CostModel
from executor.ocl.freezing import EPS, FISHER_EMA, GRAD_EMA, WARMUP_BATCHES, AdaptiveFreezing
from executor.ocl.learner import Learner, OptimizerConfig
from executor.profiler import profile_model

X = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1, 2, 0, 1, 2])


class FixedFreezing(OCLAlgorithm):
    """Vanilla that freezes layers `0..n-1` from its second step on, and keeps the gradients it saw."""

    def __init__(self, frozen: int, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        super().__init__(config, context)
        self.frozen, self.steps = frozen, 0
        self.grads: dict[str, torch.Tensor | None] = {}

    def frozen_layers(self, model: nn.Module, logits: torch.Tensor, batch: TrainBatch) -> int:
        self.steps += 1
        return self.frozen if self.steps > 1 else 0

    def after_backward(self, model: nn.Module, batch: TrainBatch) -> None:
        self.grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def learner_freezing(frozen: int, optimizer: str = "adam") -> Learner:
    model = build_model("resnet32", (1, 8, 8), 3, seed=0)
    learner = Learner(
        model,
        OptimizerConfig(optimizer, lr=1e-2, momentum=0.9 if optimizer == "sgd" else 0.0),
        AlgorithmConfig(),
        num_classes=3,
        bytes_per_sample=64,
        rng=np.random.default_rng(0),
    )
    learner.algorithm = FixedFreezing(frozen, AlgorithmConfig(), learner.algorithm.context)
    return learner


def backward_ops(learner: Learner) -> list[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        learner.apply(TrainBatch(X, Y, num_new=6))
    return [e.name for e in prof.events() if e.name.startswith("autograd::engine::evaluate_function")]


def test_a_frozen_prefix_runs_fewer_backward_ops_and_no_frozen_convolution():
    full, frozen = learner_freezing(0), learner_freezing(6)  # stem + 5 blocks of layer1
    for learner in (full, frozen):
        learner.apply(TrainBatch(X, Y, num_new=6))  # the first step trains everything
    ops_full, ops_frozen = backward_ops(full), backward_ops(frozen)
    convs = [sum("Convolution" in name for name in ops) for ops in (ops_full, ops_frozen)]
    assert convs == [33, 33 - 11]  # the stem's conv and the 2 convs of each of 5 blocks are not run
    assert len(ops_frozen) < len(ops_full)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_frozen_parameters_and_their_optimizer_state_do_not_move(optimizer):
    learner = learner_freezing(6, optimizer)
    learner.apply(TrainBatch(X, Y, num_new=6))  # unfrozen: every parameter has optimizer state now
    model, opt = learner.model, learner.optimizer
    frozen_ids = {id(p) for layer in list(model.layers)[:6] for p in layer.parameters()}
    before = {id(p): p.detach().clone() for p in model.parameters()}
    state_before = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()}
    learner.apply(TrainBatch(X, Y, num_new=6))
    moved = 0
    for p in model.parameters():
        if id(p) in frozen_ids:
            assert torch.equal(p, before[id(p)])
            for key, value in opt.state[p].items():
                assert torch.equal(value, state_before[id(p)][key]), key
        else:
            moved += not torch.equal(p, before[id(p)])
    assert moved > 0


def test_unfrozen_gradients_equal_those_of_a_full_backward():
    learner = learner_freezing(6)
    learner.apply(TrainBatch(X, Y, num_new=6))
    reference = copy.deepcopy(learner.model)
    learner.apply(TrainBatch(X, Y, num_new=6))
    grads = learner.algorithm.grads
    F.cross_entropy(reference(X), Y).backward()
    for (name, p), layer in zip(reference.named_parameters(), _layer_of(reference), strict=True):
        if layer < 6:
            assert grads[name] is None, name
        else:
            assert torch.equal(grads[name], p.grad), name


def _layer_of(model: nn.Module) -> list[int]:
    return [int(name.split(".")[1]) for name, _ in model.named_parameters()]


def test_the_score_equals_a_hand_computation():
    flops = [10.0, 20.0, 30.0, 5.0]  # three freezable layers and the classifier
    freezing = AdaptiveFreezing(flops, unfreeze_rate=0.0, rng=np.random.default_rng(0))
    freezing.fisher[:] = [1.0, 2.0, 7.0]
    s = 0.5
    uc, total = 3 * 65.0, 10.0
    backward = [0.0, 20.0, 60.0, 120.0]  # BF_{≤n} = 2·Σ_{l<n} FF_l
    fisher_prefix = [0.0, 1.0, 3.0, 10.0]
    remaining = [(total - f) / (total + EPS) for f in fisher_prefix]
    best = max(uc / (uc - b) * r for b, r in zip(backward, remaining, strict=True))
    expected = [s] + [s * remaining[n] + backward[n] / uc * best for n in (1, 2, 3)]
    assert freezing.scores(s) == pytest.approx(expected, rel=1e-12)
    # With these numbers the two cheap, uninformative layers are worth freezing at s = 0.5 ...
    assert int(np.argmax(freezing.scores(0.5))) == 2
    # ... and nothing is when the batch is informative.
    assert int(np.argmax(freezing.scores(5.0))) == 0


def test_informativeness_is_the_feature_gradient_over_its_bias_corrected_ema():
    torch.manual_seed(0)
    classifier = nn.Linear(4, 3)
    freezing = AdaptiveFreezing([1.0, 1.0], 0.0, np.random.default_rng(0))
    values = []
    for _ in range(3):
        features = torch.randn(5, 4, requires_grad=True)
        labels = torch.randint(0, 3, (5,))
        logits = classifier(features)
        F.cross_entropy(logits, labels, reduction="sum").backward()  # ∂/∂f = (softmax − onehot)·W
        values.append(float(features.grad.pow(2).sum()))
        s = freezing.informativeness(logits.detach(), labels, classifier)
        if len(values) == 1:
            assert s is None  # nothing to compare the first batch with
        else:
            ema, weight = 0.0, 0.0
            for v in values[:-1]:
                ema, weight = ema + GRAD_EMA * (v - ema), weight + GRAD_EMA * (1 - weight)
            assert s == pytest.approx(values[-1] / (ema / weight + EPS), rel=1e-5)


def test_warm_up_unfreeze_rate_and_fisher_traces_stage_by_stage():
    model = build_model("mnistnet", (1, 8, 8), 3, seed=0)
    freezing = AdaptiveFreezing([1.0, 1.0, 1.0, 100.0], unfreeze_rate=1.0, rng=np.random.default_rng(0))
    freezing.fisher[:] = [0.0, 0.0, 1.0]  # the first two layers learn nothing: freezing them is free
    logits = model(X)
    choices = [freezing.choose(logits, Y, model.classifier) for _ in range(8)]
    assert choices == [0] * 8  # unfreeze_rate 1: every batch trains every layer
    freezing.unfreeze_rate = 0.0
    freezing.grad_updates, freezing.grad_ema = 1, 1e9  # a huge EMA makes s ≈ 0: an uninformative batch
    assert freezing.choose(logits, Y, model.classifier) == 3  # freezes every layer but the classifier
    assert freezing.batches > WARMUP_BATCHES
    fresh = AdaptiveFreezing([1.0, 1.0, 1.0, 100.0], 0.0, np.random.default_rng(0))
    assert [fresh.choose(logits, Y, model.classifier) for _ in range(WARMUP_BATCHES)] == [0] * WARMUP_BATCHES
    F.cross_entropy(model(X), Y).backward()
    grads = [[p.grad for p in layer.parameters()] for layer in model.layers]
    before = freezing.fisher.copy()
    whole = AdaptiveFreezing([1.0, 1.0, 1.0, 100.0], 0.0, np.random.default_rng(0))
    whole.fisher[:] = before
    assert whole.observe_gradients(0, grads) == 2.0 * sum(
        p.numel() for layer in model.layers[:-1] for p in layer.parameters()
    )
    traces = [sum(float(p.grad.clamp(-1, 1).pow(2).sum()) for p in layer.parameters()) for layer in model.layers[:-1]]
    assert whole.fisher == pytest.approx(before + FISHER_EMA * (np.array(traces) - before), rel=1e-6)
    # A pipeline's stages report their layers at different times: the same traces, bit for bit.
    freezing.observe_gradients(2, grads[2:])
    assert np.array_equal(freezing.fisher[:2], before[:2])
    freezing.observe_gradients(0, grads[:2])
    assert np.array_equal(freezing.fisher, whole.fisher)


def test_only_a_step_that_froze_nothing_moves_the_fisher_traces():
    model = build_model("mnistnet", (1, 8, 8), 3, seed=0)
    context = AlgorithmContext(3, 64, ByteLedger(), np.random.default_rng(0), 1e-3)
    algorithm = OCLAlgorithm(AlgorithmConfig(freezing="adaptive"), context)
    F.cross_entropy(model(X), Y).backward()
    grads = [[p.grad for p in layer.parameters()] for layer in model.layers]
    frozen = TrainBatch(X, Y, num_new=6)
    frozen.frozen_layers = 1
    algorithm.stage_gradients(model, frozen, 1, grads[1:])
    assert algorithm.freezing is None or not algorithm.freezing.fisher.any()
    batch = TrainBatch(X, Y, num_new=6)
    algorithm.stage_gradients(model, batch, 1, grads[1:])
    assert algorithm.freezing is not None and algorithm.freezing.fisher[0] == 0 and algorithm.freezing.fisher[1:].all()
    assert batch.cost.flops == 2.0 * sum(p.numel() for layer in model.layers[1:-1] for p in layer.parameters())


def test_a_step_with_a_frozen_prefix_costs_exactly_the_stated_subtraction():
    model = build_model("resnet32", (1, 8, 8), 3, seed=0)
    cost = CostModel.from_profile(profile_model(model, batch_size=1, repeats=1, warmup=0))
    ff = cost.layer_forward_flops
    assert sum(ff) == cost.forward_flops
    rows, n = 6, 5
    assert cost.frozen_backward_flops(rows, n) == rows * 2 * sum(ff[:n])
    # The FLOPs charged for the step: B·(ΣFF + ΣBF − Σ_frozen BF).
    from executor.ocl.loop import _Run  # the one place steps are counted

    batch = TrainBatch(X, Y, num_new=6)
    batch.frozen_layers = n
    assert _Run.step_flops(_FakeRun(cost), batch) == rows * (3 * sum(ff) - 2 * sum(ff[:n]))


class _FakeRun:
    def __init__(self, cost_model: CostModel) -> None:
        self.cost_model = cost_model
