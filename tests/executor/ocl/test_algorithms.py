"""OCL algorithms through their public interface (observe → loss/penalty → after_update)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from executor.ledger import ByteLedger, module_bytes
from executor.ocl.algorithms import AlgorithmConfig, AlgorithmContext, build_algorithm
from executor.ocl.batch import TrainBatch
from executor.ocl.learner import Learner, OptimizerConfig
from planner.errors import FerretError
from tests.executor.ocl.helpers import linear_model, tiny_dataset

DATA = tiny_dataset(n_train=30)
X, Y = torch.from_numpy(DATA.x_train), torch.from_numpy(DATA.y_train)


def algorithm(name: str, **config: object):
    context = AlgorithmContext(3, 16, ByteLedger(), np.random.default_rng(0), lr=0.1)
    return build_algorithm(AlgorithmConfig(name=name, **config), context)


def train(model: nn.Module, algo, batch: TrainBatch, lr: float = 0.1) -> None:
    loss = algo.loss(model(batch.x), batch)
    if algo.has_penalty():
        loss = loss + algo.penalty(model.named_parameters())
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    algo.after_update(model, batch)


def test_vanilla_trains_on_what_it_is_given():
    algo = algorithm("vanilla")
    batch = algo.observe(linear_model(DATA), TrainBatch.fresh(X[:2], Y[:2]))
    assert torch.equal(batch.x, X[:2]) and batch.num_new == 2 and batch.cost.forward == 0
    logits = torch.randn(2, 3)
    assert torch.allclose(algo.loss(logits, batch), F.cross_entropy(logits, Y[:2]))


def test_er_mixes_new_and_buffered_rows_and_stores_only_new_ones():
    algo = algorithm("er", buffer_samples=4)
    model = linear_model(DATA)
    first = algo.observe(model, TrainBatch.fresh(X[:2], Y[:2]))
    assert first.rows == 2  # empty buffer: nothing to replay yet
    train(model, algo, first)
    assert algo.buffer.labels.tolist() == Y[:2].tolist()
    second = algo.observe(model, TrainBatch.fresh(X[2:3], Y[2:3]))
    assert second.rows == 2 and second.num_new == 1  # 1:1 mix by default
    assert torch.equal(second.x[0], X[2]) and any(torch.equal(second.x[1], X[i]) for i in range(2))
    train(model, algo, second)
    assert sorted(algo.buffer.labels.tolist()) == sorted(Y[:3].tolist())  # the replayed row is not re-added
    bigger = algorithm("er", buffer_samples=10, replay_batch=5)
    bigger.buffer.add(X[:8], Y[:8])
    assert bigger.observe(model, TrainBatch.fresh(X[8:9], Y[8:9])).rows == 6


def test_er_keeps_weights_of_weighted_batches():
    algo = algorithm("er")
    algo.buffer.add(X[:5], Y[:5])
    batch = algo.observe(linear_model(DATA), TrainBatch.fresh(X[5:7], Y[5:7], weight=torch.tensor([2.0, 0.5])))
    assert batch.weight.tolist() == [2.0, 0.5, 1.0, 1.0]
    logits = torch.randn(4, 3)
    per_row = F.cross_entropy(logits, batch.y, reduction="none")
    assert torch.allclose(algo.loss(logits, batch), (per_row * batch.weight).sum() / 4.5)


def test_mir_replays_the_most_interfered_candidates():
    algo = algorithm("mir", buffer_samples=20, mir_candidates=20, replay_batch=3)
    model = linear_model(DATA, seed=1)
    algo.buffer.add(X[:12], Y[:12])
    new_x, new_y = X[12:14], Y[12:14]
    batch = algo.observe(model, TrainBatch.fresh(new_x, new_y))
    # By hand: a virtual SGD step on the new rows, then the loss increase of every buffer sample.
    virtual = copy.deepcopy(model)
    loss = F.cross_entropy(virtual(new_x), new_y)
    grads = torch.autograd.grad(loss, list(virtual.parameters()))
    with torch.no_grad():
        before = F.cross_entropy(model(X[:12]), Y[:12], reduction="none")
        for p, g in zip(virtual.parameters(), grads, strict=True):
            p -= 0.1 * g
        after = F.cross_entropy(virtual(X[:12]), Y[:12], reduction="none")
    top = sorted(torch.topk(after - before, 3).indices.tolist())
    assert batch.rows == 5 and batch.num_new == 2
    assert torch.equal(batch.x[2:], X[top])
    assert batch.cost.forward == 2 + 2 * 12 and batch.cost.backward == 2
    # The model itself was not moved by the virtual step.
    fresh = linear_model(DATA, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters(), strict=True))


def test_lwf_distils_the_teacher_from_the_task_boundary():
    algo = algorithm("lwf", lwf_alpha=0.5, lwf_temperature=2.0)
    model = linear_model(DATA)
    batch = algo.observe(model, TrainBatch.fresh(X[:3], Y[:3], task=0))
    assert batch.teacher_logits is None  # no previous model yet: plain CE
    train(model, algo, batch)  # classes 0, 1, 2 are now seen
    seen_model = copy.deepcopy(model)
    batch = algo.observe(model, TrainBatch.fresh(X[3:5], Y[3:5], task=1))
    assert torch.equal(batch.teacher_logits, seen_model(X[3:5]).detach())
    assert algo.context.ledger.held("teacher") == module_bytes(model)
    assert batch.cost.forward == 2
    logits = torch.randn(2, 3)
    expected = F.cross_entropy(logits, Y[3:5]) + 0.5 * 4 * F.kl_div(
        F.log_softmax(logits / 2, dim=1), F.softmax(batch.teacher_logits / 2, dim=1), reduction="batchmean"
    )
    assert torch.allclose(algo.loss(logits, batch), expected)


def test_lwf_distils_only_classes_the_teacher_had_seen():
    algo = algorithm("lwf")
    model = linear_model(DATA)
    first = algo.observe(model, TrainBatch.fresh(X[0:1], Y[0:1], task=0))  # class 0 only
    train(model, algo, first)
    batch = algo.observe(model, TrainBatch.fresh(X[1:3], Y[1:3], task=1))
    assert batch.teacher_classes.tolist() == [0] and batch.teacher_logits.shape == (2, 1)


def test_lwf_consolidates_periodically_on_task_free_streams():
    algo = algorithm("lwf", consolidate_every=4)
    model = linear_model(DATA)
    for i in range(0, 8, 2):
        batch = algo.observe(model, TrainBatch.fresh(X[i : i + 2], Y[i : i + 2]))
        assert (batch.teacher_logits is not None) == (i >= 4)
        train(model, algo, batch)


def test_mas_importance_anchor_and_penalty_by_hand():
    lam = 0.7
    algo = algorithm("mas", mas_lambda=lam)
    model = linear_model(DATA)
    linear = model.classifier
    batch = algo.observe(model, TrainBatch.fresh(X[:1], Y[:1], task=0))
    assert batch.cost.forward == 1 and batch.cost.backward == 1  # the importance pass
    train(model, algo, batch)
    # ‖Wx + b‖² has gradient 2·f·xᵀ for W and 2·f for b, taken after the update.
    with torch.no_grad():
        f = linear(X[0])
    weight_name = next(n for n, p in model.named_parameters() if p is linear.weight)
    bias_name = next(n for n, p in model.named_parameters() if p is linear.bias)
    assert torch.allclose(algo.importance_sum[weight_name], (2 * f[:, None] * X[0][None, :]).abs(), atol=1e-6)
    assert torch.allclose(algo.importance_sum[bias_name], (2 * f).abs(), atol=1e-6)
    assert not algo.has_penalty()
    algo.observe(model, TrainBatch.fresh(X[1:2], Y[1:2], task=1))  # a new task: anchor here
    assert algo.has_penalty()
    with torch.no_grad():
        linear.weight += 0.1
    penalty = algo.penalty(model.named_parameters())
    expected = lam * (algo.omega[weight_name] * 0.01).sum()  # the bias did not move
    assert torch.allclose(penalty, expected)
    assert algo.context.ledger.held("importance") == 3 * module_bytes(model)


def test_algorithms_inside_a_learner_train_and_account_their_memory():
    for name in ("vanilla", "er", "mir", "lwf", "mas"):
        ledger = ByteLedger()
        model = linear_model(DATA)
        learner = Learner(
            model,
            OptimizerConfig(name="sgd", lr=0.1),
            AlgorithmConfig(name=name, buffer_samples=8, consolidate_every=4),
            num_classes=3,
            bytes_per_sample=16,
            rng=np.random.default_rng(0),
            ledger=ledger,
        )
        before = copy.deepcopy(model.state_dict())
        for i in range(0, 12, 2):
            learner.apply(learner.prepare(X[i : i + 2], Y[i : i + 2]))
        assert learner.version == 6
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), name
        extra = {"er": "replay", "mir": "replay", "lwf": "teacher", "mas": "importance"}
        if name in extra:
            assert ledger.held(extra[name]) > 0, name


def test_unknown_algorithm_and_bad_config():
    with pytest.raises(FerretError, match="unknown OCL algorithm 'ewc'"):
        algorithm("ewc")
    with pytest.raises(FerretError, match="algorithm replay_batch must be an integer ≥ 1, got 0"):
        algorithm("er", replay_batch=0)
