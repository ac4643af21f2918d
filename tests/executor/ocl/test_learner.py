"""Learner: the same arithmetic as a hand-written loop, and an exact byte ledger."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from executor.ledger import ByteLedger, module_bytes
from executor.models import build_model
from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.cost import CostModel, StepCost
from executor.ocl.learner import Learner, OptimizerConfig
from executor.ocl.modes import mode_invariant
from planner.profile import LayerProfile, ModelProfile
from tests.executor.ocl.helpers import tiny_dataset

DATA = tiny_dataset(n_train=40, features=6)
X, Y = torch.from_numpy(DATA.x_train), torch.from_numpy(DATA.y_train)


def learner_for(model: torch.nn.Module, optimizer: str = "adam", ledger: ByteLedger | None = None) -> Learner:
    return Learner(
        model,
        OptimizerConfig(name=optimizer, lr=1e-2),
        AlgorithmConfig(),
        num_classes=3,
        bytes_per_sample=6,
        rng=np.random.default_rng(0),
        ledger=ledger,
    )


def test_vanilla_steps_equal_a_hand_written_loop():
    model = build_model("mlp", (6,), 3, seed=0, hidden=(8,))
    reference = copy.deepcopy(model)
    learner = learner_for(model)
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for i in range(0, 20, 4):
        logits_before = learner.apply(learner.prepare(X[i : i + 4], Y[i : i + 4]))
        out = reference(X[i : i + 4])
        loss = F.cross_entropy(out, Y[i : i + 4])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.equal(logits_before, out.detach())
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_ledger_holds_weights_optimizer_and_the_step():
    ledger = ByteLedger()
    model = build_model("mlp", (6,), 3, seed=0, hidden=(8,))
    learner = learner_for(model, "adam", ledger)
    params = module_bytes(model)  # 6·8 + 8 + 8·3 + 3 = 83 floats
    assert params == 83 * 4 and ledger.held("weights") == params
    learner.apply(learner.prepare(X[:4], Y[:4]))
    # Adam: two moments per parameter plus one float32 step counter per parameter tensor.
    assert ledger.held("optimizer") == 2 * params + 4 * 4
    peaks = ledger.peaks()
    assert peaks["inputs"] == 4 * 6 * 4 + 4 * 8  # rows (float32) and labels (int64)
    assert peaks["gradients"] == params
    assert ledger.held("activations") == 0 and ledger.held("gradients") == 0  # freed after the step
    assert ledger.peak == params + 2 * params + 16 + peaks["inputs"] + peaks["activations"] + params


def test_activations_grow_by_the_bytes_saved_per_row():
    # Per row autograd keeps the hidden ReLU output (8 floats) and the log-softmax (3 floats).
    sizes = {}
    for rows in (2, 5):
        ledger = ByteLedger()
        learner = learner_for(build_model("mlp", (6,), 3, seed=0, hidden=(8,)), "sgd", ledger)
        learner.apply(learner.prepare(X[:rows], Y[:rows]))
        sizes[rows] = ledger.peaks()["activations"]
    assert sizes[5] - sizes[2] == 3 * (8 + 3) * 4


def test_sgd_without_momentum_keeps_no_optimizer_state():
    ledger = ByteLedger()
    learner = learner_for(build_model("mlp", (6,), 3, seed=0, hidden=()), "sgd", ledger)
    learner.apply(learner.prepare(X[:2], Y[:2]))
    assert ledger.held("optimizer") == 0


def test_predict_and_features_run_in_eval_mode_and_leave_training_mode():
    model = build_model("mnistnet", (1, 8, 8), 3, seed=0)
    learner = learner_for(model)
    x = torch.randn(5, 1, 8, 8)
    assert learner.predict(x).shape == (5,) and learner.features(x).shape == (5, 128)
    assert model.training


def test_mode_invariance():
    assert mode_invariant(build_model("mnistnet", (1, 8, 8), 3, seed=0))
    assert not mode_invariant(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)))
    assert not mode_invariant(torch.nn.Sequential(torch.nn.Dropout(0.1)))


def test_cost_model_from_a_hand_profile():
    layers = (
        LayerProfile("a", 2e-3, 4e-3, 0, 0, 100),
        LayerProfile("b", 6e-3, 8e-3, 0, 0, 300),
        LayerProfile("head", 2e-3, 2e-3, 0, 0, 20),
    )
    cost = CostModel.from_profile(ModelProfile("m", layers, batch_size=2, source="synthetic"))
    # Per sample: profile ÷ batch 2.
    assert cost.forward_s == 5e-3 and cost.backward_s == 7e-3 and cost.features_s == 4e-3
    assert cost.default_arrival_interval_s == 3e-3  # the slowest layer's forward
    step = StepCost(forward=3, backward=2, features=4)
    assert np.isclose(cost.seconds(step), 3 * 5e-3 + 2 * 7e-3 + 4 * 4e-3)
    # FLOPs: forward FF = 210, backward 2·FF, features 200 per sample.
    assert cost.flops(step) == 3 * 210 + 2 * 2 * 210 + 4 * 200
    assert cost.flops(StepCost.train(5)) == 5 * 3 * 210 == 5 * cost.sample_step_flops


def test_cost_model_fits_a_fixed_part_from_two_batch_sizes():
    def profile(batch: int, fwd: float, bwd: float) -> ModelProfile:
        layers = (LayerProfile("a", fwd * 0.75, bwd, 0, 0, 40 * batch), LayerProfile("head", fwd * 0.25, 0.0, 0, 0, 0))
        return ModelProfile("m", layers, batch_size=batch, source="synthetic")

    # Forward 1 ms + 0.5 ms/row, backward 2 ms + 1 ms/row: exactly affine.
    one, sixteen = profile(1, 1.5e-3, 3e-3), profile(16, 9e-3, 18e-3)
    cost = CostModel.from_profiles((one, sixteen))
    assert np.isclose(cost.step_fixed_s, 3e-3) and np.isclose(cost.forward_s + cost.backward_s, 1.5e-3)
    assert np.isclose(cost.step_s(1), 4.5e-3) and np.isclose(cost.step_s(10), 18e-3)
    assert np.isclose(cost.sample_step_s, 4.5e-3)
    # Features: forward without the head, per row (its fixed part is not charged).
    assert np.isclose(cost.features_s, 0.75 * 0.5e-3)
    # FLOPs stay linear and come from the smallest batch; td from its slowest layer.
    assert cost.flops(StepCost.train(3)) == 3 * 3 * 40
    assert cost.default_arrival_interval_s == 0.75 * 1.5e-3
    # One profile: linear through the origin, as before.
    linear = CostModel.from_profile(one)
    assert linear.step_fixed_s == 0.0 and np.isclose(linear.step_s(10), 10 * 4.5e-3)


def test_cost_model_keeps_both_parts_non_negative_under_noise():
    def total(batch: int, seconds: float) -> ModelProfile:
        return ModelProfile("m", (LayerProfile("a", seconds, seconds, 0, 0),), batch_size=batch, source="synthetic")

    # A larger batch measured faster than a smaller one: no negative slope, the mean is fixed.
    cost = CostModel.from_profiles((total(1, 2e-3), total(4, 1e-3)))
    assert cost.forward_s == 0.0 and np.isclose(cost.step_fixed_s, 3e-3)
    # A fit through the points would cross below zero: a line through the origin instead.
    cost = CostModel.from_profiles((total(1, 1e-3), total(2, 4e-3)))
    assert cost.step_fixed_s == 0.0 and np.isclose(cost.forward_s, (1e-3 + 2 * 4e-3) / 5)
