"""Latest-weights backward (SPEC §3.2): the backward re-runs the stage forward from the kept input
on the stage's current weights and differentiates that; no version is stashed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from executor.ledger import ByteLedger
from executor.stage import OptimizerConfig, StageRuntime
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain, scalar_chain
from tests.executor.stage.schedules import async_1f1b, drive

LR = 0.1


def _pipeline(weights: list[float], backward_weights: str, ledger: ByteLedger | None = None):
    P = len(weights)
    model = scalar_chain(weights)
    recompute = backward_weights == "latest"
    workers = tuple(WorkerConfig(n, recompute, (1,) * P, (0,) * P, backward_weights) for n in range(2))
    plan = Plan("ferret", tuple(range(P + 1)), workers, default_placement(2, P), 1.0)
    return [StageRuntime(model, plan, j, OptimizerConfig("sgd", lr=LR), ledger=ledger) for j in range(P)]


def _loss(z: torch.Tensor) -> torch.Tensor:
    return z.square().sum()


def _weight(stage: StageRuntime) -> float:
    return stage.layers[0].weight.item()


def _overtaken(stages: list[StageRuntime], x0: float, x1: float) -> None:
    """Datum 0 (worker 0) goes forward; datum 1 (worker 1) overtakes it: forward, backward, both
    stages updated; then datum 0's backward comes."""
    h0 = stages[0].forward(0, 0, torch.tensor([[x0]])).output
    stages[1].forward(0, 0, h0)
    h1 = stages[0].forward(1, 1, torch.tensor([[x1]])).output
    stages[1].forward(1, 1, h1)
    top = stages[1].backward(1, 1, loss_fn=_loss)
    stages[0].backward(1, 1, top.grad_input)


def test_the_gradient_is_the_hand_computed_one_at_the_latest_weights():
    w0, w1, x0, x1 = 1.5, -0.8, 0.7, 1.2
    stages = _pipeline([w0, w1], "latest")
    _overtaken(stages, x0, x1)
    # datum 1's updates, by hand: L = (w1·w0·x1)², SGD
    out1 = w1 * w0 * x1
    v0, v1 = w0 - LR * 2 * out1 * w1 * x1, w1 - LR * 2 * out1 * w0 * x1
    assert _weight(stages[0]) == pytest.approx(v0) and _weight(stages[1]) == pytest.approx(v1)
    # datum 0's backward at the latest weights: stage 1 recomputes from its kept input h0 = w0·x0
    # (produced at datum 0's forward) with v1; stage 0 from x0 with v0.
    top = stages[1].backward(0, 0, loss_fn=_loss)
    h0 = w0 * x0
    out0 = v1 * h0
    assert (top.version, top.staleness) == (1, 0)
    assert _weight(stages[1]) == pytest.approx(v1 - LR * 2 * out0 * h0)
    assert top.grad_input.item() == pytest.approx(2 * out0 * v1)
    bottom = stages[0].backward(0, 0, top.grad_input)
    assert (bottom.version, bottom.staleness) == (1, 0)
    assert _weight(stages[0]) == pytest.approx(v0 - LR * 2 * out0 * v1 * x0)


def test_stashed_backward_uses_the_forwards_weights_instead():
    # The same ops with weight stashing: the gradient of datum 0 is taken at w0, w1 (staleness 1).
    w0, w1, x0, x1 = 1.5, -0.8, 0.7, 1.2
    stages = _pipeline([w0, w1], "stashed")
    _overtaken(stages, x0, x1)
    v0, v1 = _weight(stages[0]), _weight(stages[1])
    top = stages[1].backward(0, 0, loss_fn=_loss)
    out0 = w1 * w0 * x0
    assert (top.version, top.staleness) == (0, 1)
    assert _weight(stages[1]) == pytest.approx(v1 - LR * 2 * out0 * w0 * x0)
    stages[0].backward(0, 0, top.grad_input)
    assert _weight(stages[0]) == pytest.approx(v0 - LR * 2 * out0 * w1 * x0)


def test_it_stores_one_version_and_the_kept_inputs():
    ledger = ByteLedger()
    stages = _pipeline([1.5, -0.8], "latest", ledger)
    h0 = stages[0].forward(0, 0, torch.tensor([[0.7]])).output
    stages[1].forward(0, 0, h0)
    stages[0].forward(1, 1, torch.tensor([[1.2]]))
    one_input = 4  # one float32
    assert stages[0].held_by_category() == {"weights": 4, "activations": 2 * one_input}
    assert stages[1].held_by_category() == {"weights": 4, "activations": one_input}
    stages[1].forward(1, 1, stages[0].versions.current.params[0].detach().reshape(1, 1))
    top = stages[1].backward(1, 1, loss_fn=_loss)
    stages[0].backward(1, 1, top.grad_input)
    # updated while datum 0 is in flight: still one version per stage (no stash to copy on write)
    assert [s.versions.held_ids for s in stages] == [(1,), (1,)]
    assert stages[0].held_by_category() == {"weights": 4, "activations": one_input}


def test_an_update_between_a_separate_recompute_and_the_backward_makes_it_stale_by_one():
    # The recompute op takes the version current then; the datum holds it (copy on write) until
    # its backward, which reports the staleness it then has.
    stages = _pipeline([1.5, -0.8], "latest")
    h0 = stages[0].forward(0, 0, torch.tensor([[0.7]])).output
    stages[1].forward(0, 0, h0)
    h1 = stages[0].forward(1, 1, torch.tensor([[1.2]])).output
    stages[1].forward(1, 1, h1)
    assert stages[1].recompute(0, 0) == 0
    stages[1].backward(1, 1, loss_fn=_loss)  # stage 1 → version 1
    assert stages[1].versions.held_ids == (0, 1)
    result = stages[1].backward(0, 0, loss_fn=_loss)
    assert (result.version, result.staleness) == (0, 1)
    assert stages[1].versions.held_ids == (2,)


def test_latest_and_stashed_workers_share_a_stage():
    P, N, n = 3, 2, 30
    model = linear_chain(3, 4, seed=1)
    workers = (WorkerConfig(0, True, (1,) * P, (0,) * P, "latest"), WorkerConfig(1, False, (1,) * P, (0,) * P))
    plan = Plan("ferret", (0, 1, 2, 3), workers, default_placement(N, P), 1.0)
    stages = [StageRuntime(model, plan, j, OptimizerConfig("adam", lr=1e-2)) for j in range(P)]
    gen = torch.Generator().manual_seed(0)
    X, Y = torch.randn(n, 1, 4, generator=gen), torch.randint(0, 4, (n, 1), generator=gen)
    stale = {0: [], 1: []}

    def on_op(op, result):
        if op.kind == "bwd":
            stale[op.worker].append(result.staleness)

    drive(stages, async_1f1b(P, N, n, tf=1, tb=2, td=2), X.__getitem__, lambda s, z: F.cross_entropy(z, Y[s]), on_op)
    assert set(stale[0]) == {0} and max(stale[1]) > 0  # only the stashing worker sees stale weights
    assert all(s.in_flight == 0 for s in stages)


@pytest.mark.parametrize("P", [1, 2, 3])
def test_stored_bytes_equal_the_latest_weights_closed_form(P):
    # One worker in the closed form's regime (cycle 2·tf + tb = td): stage j holds its one
    # version and the kept inputs of the P − j data in flight — (F4) for latest weights,
    # Σ_j w_j + v_j·(a_j − s_j), where the input kept equals the first layer's output here.
    from planner.closed_form import memory_bytes, stage_sizes
    from tests.executor.stage.test_memory import LAYERS, WIDTH, _profile

    model = linear_chain(LAYERS, WIDTH)
    profile = _profile(model)
    worker = WorkerConfig(0, True, (1,) * P, (0,) * P, "latest")
    plan = Plan("ferret", tuple(range(0, LAYERS + 1, LAYERS // P)), (worker,), default_placement(1, P), 1.0)
    ledger = ByteLedger()
    stages = [StageRuntime(model, plan, j, ledger=ledger) for j in range(P)]
    peak = [0] * P
    total = 0

    def on_op(op, result):
        nonlocal total
        for j, stage in enumerate(stages):
            peak[j] = max(peak[j], stage.held_bytes("weights") + stage.held_bytes("activations"))
        total = max(total, ledger.held("weights") + ledger.held("activations"))

    X = torch.randn(40, 1, WIDTH, generator=torch.Generator().manual_seed(0))
    drive(stages, async_1f1b(P, 1, 40, tf=1, tb=2, td=4), X.__getitem__, lambda s, z: z.mean(), on_op)
    w, a, s = stage_sizes(profile, plan.partition)
    assert peak == [int(w[j] + (P - j) * (a[j] - s[j])) for j in range(P)]
    assert total == memory_bytes(profile, plan)
    assert all(stage.versions.held == 1 for stage in stages)
