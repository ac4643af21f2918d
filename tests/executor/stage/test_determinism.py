"""The same sequence of ops twice gives bit-identical weights, versions and ledgers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from executor.compensation import COMPENSATORS, CompensationConfig
from executor.ledger import ByteLedger
from executor.stage import OptimizerConfig, StageRuntime
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain
from tests.executor.stage.schedules import async_1f1b, drive


def _run(compensation: str, optimizer: str):
    P, N, n = 3, 2, 40
    model = linear_chain(6, 5, seed=3)
    workers = (WorkerConfig(0, True, (2, 1, 1), (0, 0, 0)), WorkerConfig(1, False, (1, 1, 1), (1, 0, 0)))
    plan = Plan("ferret", (0, 2, 4, 6), workers, default_placement(N, P), 1.0)
    ledger = ByteLedger()
    comp = CompensationConfig(compensation, eta_lambda=1e-2)
    runtimes = [StageRuntime(model, plan, j, OptimizerConfig(optimizer, lr=1e-2), comp, ledger) for j in range(P)]
    gen = torch.Generator().manual_seed(7)
    X, Y = torch.randn(n, 1, 5, generator=gen), torch.randint(0, 5, (n, 1), generator=gen)
    trace = []
    drive(
        runtimes,
        async_1f1b(P, N, n, tf=2, tb=6, td=3),
        lambda s: X[s],
        lambda s, z: F.cross_entropy(z, Y[s]),
        lambda op, r: trace.append((op, r.version, getattr(r, "staleness", None))),
    )
    return [p.detach().clone() for p in model.parameters()], trace, ledger.peaks()


@pytest.mark.parametrize("compensation", sorted(COMPENSATORS))
def test_same_ops_twice_give_bit_identical_weights(compensation):
    first = _run(compensation, "adam")
    second = _run(compensation, "adam")
    assert all(torch.equal(a, b) for a, b in zip(first[0], second[0], strict=True))
    assert first[1] == second[1]
    assert first[2] == second[2]
    assert any(staleness for _, _, staleness in first[1]), "the schedule must produce stale gradients"
