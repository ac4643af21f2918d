"""Omission (T3), accumulation (T2), recomputation (T1), freezing and misuse, op by op."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.ledger import ByteLedger
from executor.stage import StageRuntime, output_gradient
from planner.plan import REMOVED, Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain
from tests.executor.stage.schedules import async_1f1b, drive

WIDTH = 3


def _runtimes(partition, workers, ledger=None, seed=0):
    P = len(partition) - 1
    model = linear_chain(partition[-1], WIDTH, seed=seed)
    plan = Plan("ferret", tuple(partition), tuple(workers), default_placement(len(workers), P), 1.0)
    return model, [StageRuntime(model, plan, j, ledger=ledger) for j in range(P)]


def _data(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, WIDTH, generator=gen)


def _loss(sample, z):
    return z.square().mean()


@st.composite
def omission_workers(draw):
    P = draw(st.integers(2, 4))
    N = draw(st.integers(1, 2))
    workers = [
        WorkerConfig(n, False, (1,) * P, tuple(draw(st.integers(0, P - 1 - j)) for j in range(P))) for n in range(N)
    ]
    return P, workers


@settings(max_examples=25)
@given(omission_workers())
def test_stage_i_trains_on_exactly_one_lcm_th_of_each_workers_data(case):
    P, workers = case
    N = len(workers)
    per_worker = 24  # a multiple of every LCM that omission steps ≤ 3 can produce (≤ 12)
    _, runtimes = _runtimes(list(range(P + 1)), workers)
    ran = [[0] * N for _ in range(P)]

    def on_op(op, result):
        if op.kind == "bwd" and result.ran:
            ran[op.stage][op.worker] += 1

    X = _data(N * per_worker)
    drive(runtimes, async_1f1b(P, N, N * per_worker, tf=N, tb=2 * N, td=3), X.__getitem__, _loss, on_op)
    for i in range(P):
        for n, w in enumerate(workers):
            lcm = math.lcm(*(w.omission[k] + 1 for k in range(i, P)))
            assert ran[i][n] == per_worker // lcm
        assert runtimes[i].current_version == sum(ran[i])
        assert runtimes[i].in_flight == 0
        assert runtimes[i].held_by_category() == {"weights": runtimes[i].layout.nbytes}


def test_a_stage_steps_every_c_a_backwards_of_a_worker_and_averages():
    workers = [WorkerConfig(0, False, (2, 3), (0, 0)), WorkerConfig(1, False, (3, 1), (0, 0))]
    _, runtimes = _runtimes([0, 1, 2], workers)
    seen = {(j, n): [] for j in range(2) for n in range(2)}
    steps = {(j, n): [] for j in range(2) for n in range(2)}

    def on_op(op, result):
        if op.kind == "bwd":
            key = (op.stage, op.worker)
            seen[key].append(op.sample)
            if result.update is not None:
                steps[key].append(len(seen[key]))
                every = workers[op.worker].accumulation[op.stage]
                assert result.update.samples == tuple(seen[key][-every:])  # the group, in backward order
                assert result.update.version + 1 == runtimes[op.stage].current_version

    X = _data(36)
    drive(runtimes, async_1f1b(2, 2, 36, tf=2, tb=4, td=3), X.__getitem__, _loss, on_op)
    for (j, n), counts in steps.items():
        every = workers[n].accumulation[j]
        assert counts == list(range(every, 18 + 1, every))


def test_accumulated_gradients_are_averaged():
    plan_workers = [WorkerConfig(0, False, (2,), (0,))]
    model, (stage,) = _runtimes([0, 2], plan_workers)
    twin = linear_chain(2, WIDTH, seed=0)
    X = _data(2)
    for i in range(2):
        out = stage.forward(0, i, X[i]).output
        result = stage.backward(0, i, output_gradient(out, lambda z, i=i: _loss(i, z))[1])
        assert (result.update is None) == (i == 0)
    loss = (_loss(0, twin(X[0])) + _loss(1, twin(X[1]))) / 2
    loss.backward()
    with torch.no_grad():
        for p in twin.parameters():
            p.sub_(1e-3 * p.grad)
    for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)


@pytest.mark.parametrize("separate_op", [False, True])
def test_recomputation_gives_identical_gradients_and_stores_less(separate_op):
    P, N, n_data = 3, 2, 30
    results = {}
    for recompute in (False, True):
        ledger = ByteLedger()
        workers = [WorkerConfig.default(n, P, recompute=recompute) for n in range(N)]
        model, runtimes = _runtimes([0, 2, 4, 6], workers, ledger)
        grads = []
        between_ops = [0]  # activations held when no op is running

        def on_op(
            op, result, grads=grads, between_ops=between_ops, runtimes=runtimes, recompute=recompute, ledger=ledger
        ):
            if op.kind == "bwd" and result.grad_input is not None:
                grads.append(result.grad_input)
            if op.kind == "fwd" and recompute and separate_op and op.stage == P - 1:
                # the trace's own `recompute` row, right before the top stage's backward
                assert runtimes[op.stage].recompute(op.worker, op.sample) == result.version
            between_ops[0] = max(between_ops[0], ledger.held("activations"))

        X = _data(n_data)
        # One schedule for both runs (the backward slot has room for the recomputation).
        drive(runtimes, async_1f1b(P, N, n_data, tf=N, tb=3 * N, td=3), X.__getitem__, _loss, on_op)
        weights = [p.detach().clone() for p in model.parameters()]
        results[recompute] = (weights, grads, between_ops[0], ledger.peak_of("activations"))
    plain, recomputed = results[False], results[True]
    assert all(torch.equal(a, b) for a, b in zip(plain[0], recomputed[0], strict=True))
    assert len(plain[1]) == len(recomputed[1]) and all(
        torch.equal(a, b) for a, b in zip(plain[1], recomputed[1], strict=True)
    )
    rebuilt = 2 * WIDTH * 4  # one datum's two layer outputs at one stage, rebuilt for its backward
    if not separate_op:
        # Between ops each stage keeps one input of WIDTH floats instead of two layer outputs per
        # datum; during a backward the one datum being back-propagated is rebuilt in full.
        assert recomputed[2] * 2 == plain[2]
        assert recomputed[2] < recomputed[3] <= recomputed[2] + rebuilt
    assert recomputed[3] < plain[3]


def test_a_frozen_backward_trains_nothing_and_releases_everything():
    model, runtimes = _runtimes([0, 1, 2], [WorkerConfig.default(0, 2)])
    before = [p.detach().clone() for p in model.parameters()]
    X = _data(1)
    h = runtimes[0].forward(0, 0, X[0]).output
    out = runtimes[1].forward(0, 0, h).output
    result = runtimes[1].backward(0, 0, output_gradient(out, lambda z: _loss(0, z))[1], frozen_layers=1)
    assert not result.ran and result.grad_input is None and result.update is None
    assert runtimes[1].in_flight == 0 and runtimes[1].held_bytes("activations") == 0
    assert runtimes[1].current_version == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_an_omitted_datum_returns_none_and_stores_nothing():
    workers = [WorkerConfig(0, False, (1, 1), (1, 0))]
    _, (bottom, top) = _runtimes([0, 1, 2], workers)
    X = _data(2)
    for i in range(2):
        first = bottom.forward(0, i, X[i])
        assert first.stored == (i % 2 == 0)
        out = top.forward(0, i, first.output).output
        grad = top.backward(0, i, output_gradient(out, lambda z, i=i: _loss(i, z))[1]).grad_input
        result = bottom.backward(0, i, grad)
        assert result.ran == (i % 2 == 0)
        assert result.grad_input is None
    assert bottom.in_flight == 0 and bottom.current_version == 1


def test_misuse_is_refused_with_a_clear_message():
    workers = [WorkerConfig.default(0, 1), WorkerConfig(REMOVED, False, (1,), (0,))]
    _, (stage,) = _runtimes([0, 1], workers)
    x = torch.zeros(1, WIDTH)
    with pytest.raises(ValueError, match="worker 1 is removed"):
        stage.forward(1, 0, x)
    with pytest.raises(ValueError, match="worker 5 is not in the plan"):
        stage.forward(5, 0, x)
    stage.forward(0, 0, x)
    with pytest.raises(RuntimeError, match="already in flight"):
        stage.forward(0, 0, x)
    with pytest.raises(RuntimeError, match="no forward of sample 7"):
        stage.backward(0, 7, torch.zeros(1, WIDTH))
    with pytest.raises(ValueError, match="needs grad_output or loss_fn"):
        stage.backward(0, 0, None)
    with pytest.raises(RuntimeError, match="no stored input awaiting recomputation"):
        stage.recompute(0, 0)  # worker 0 does not recompute: its graph is already stored


def test_loss_fn_at_the_last_stage_equals_passing_the_output_gradient():
    results = []
    for use_loss_fn in (True, False):
        model, (stage,) = _runtimes([0, 2], [WorkerConfig.default(0, 1)])
        X = _data(6)
        losses = []
        for i in range(6):
            out = stage.forward(0, i, X[i]).output
            if use_loss_fn:
                result = stage.backward(0, i, loss_fn=lambda z, i=i: _loss(i, z))
                losses.append(result.loss)
            else:
                loss, grad = output_gradient(out, lambda z, i=i: _loss(i, z))
                losses.append(loss)
                assert stage.backward(0, i, grad).loss is None
        results.append(([p.detach().clone() for p in model.parameters()], losses))
    (w1, l1), (w2, l2) = results
    assert all(torch.equal(a, b) for a, b in zip(w1, w2, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(l1, l2, strict=True))


def test_backward_needs_exactly_one_of_grad_output_and_loss_fn_and_keeps_the_datum_on_refusal():
    _, (stage,) = _runtimes([0, 1], [WorkerConfig.default(0, 1)])
    stage.forward(0, 0, torch.zeros(1, WIDTH))
    with pytest.raises(ValueError, match="grad_output or loss_fn"):
        stage.backward(0, 0, torch.zeros(1, WIDTH), loss_fn=lambda z: z.sum())
    assert stage.in_flight == 1
    assert stage.backward(0, 0, loss_fn=lambda z: z.sum()).ran


def test_batchnorm_statistics_move_once_per_datum_under_recomputation_and_are_counted():
    from torch import nn

    from executor.models.base import LayeredModel

    def model():
        torch.manual_seed(0)
        layers = [("bn", nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.BatchNorm1d(WIDTH))), ("head", nn.Linear(WIDTH, 2))]
        return LayeredModel("bn", layers, (WIDTH,), 2)

    stats = []
    for recompute in (False, True):
        m = model()
        plan = Plan("p", (0, 1, 2), (WorkerConfig.default(0, 2, recompute),), default_placement(1, 2), 1.0)
        ledger = ByteLedger()
        runtimes = [StageRuntime(m, plan, j, ledger=ledger) for j in range(2)]
        assert ledger.held("buffers") == 2 * WIDTH * 4 + 8  # running mean, var and the int64 batch counter
        X = _data(16).view(8, 2, WIDTH)  # batches of 2 for BatchNorm
        drive(runtimes, async_1f1b(2, 1, 8, tf=1, tb=3, td=4), X.__getitem__, lambda s, z: z.square().mean(), None)
        bn = m.layers[0][1]
        stats.append((bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)))
    assert torch.equal(stats[0][0], stats[1][0]) and torch.equal(stats[0][1], stats[1][1])
    assert stats[0][2] == stats[1][2] == 8
