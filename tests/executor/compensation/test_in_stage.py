"""Compensators inside a StageRuntime: the applied update equals the hand formula, the version
chain Iter-Fisher needs is kept (and only then), and compensator state is in the ledger."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from executor.compensation import CompensationConfig
from executor.ledger import ByteLedger
from executor.stage import OptimizerConfig, StageRuntime
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain, scalar_chain
from tests.executor.stage.schedules import async_1f1b, drive

LR, LAM = 0.1, 0.5
WEIGHTS = [1.2, 0.8, 1.1]


def _x(sample: int) -> float:
    return 0.6 + 0.1 * (sample % 4)


def _hand(name: str, g: float, chain: list[float], tau: int, steps: list[float]) -> float:
    """The compensated gradient of a scalar weight, straight from SPEC §5."""
    if name == "none" or tau == 0:
        return g
    if name == "step-aware":
        return g / (tau + 1)
    if name == "fisher":
        return g + LAM * g * g * (chain[-1] - chain[0])
    if name == "iter-fisher":
        for older, newer in itertools.pairwise(chain):
            g = g + LAM * g * g * (newer - older)
        return g
    c = abs(steps[0])  # gap-aware: C = EMA(0.9) of |Δθ|, started at the first step
    for s in steps[1:]:
        c = 0.9 * c + 0.1 * abs(s)
    return g / max(1.0, abs(chain[-1] - chain[0]) / c)


@pytest.mark.parametrize("name", ["none", "step-aware", "gap-aware", "fisher", "iter-fisher"])
def test_the_compensated_update_of_a_stale_gradient_equals_the_hand_formula(name):
    P = 3
    model = scalar_chain(WEIGHTS)
    plan = Plan("pipedream", (0, 1, 2, 3), (WorkerConfig.default(0, P),), default_placement(1, P), 1.0)
    comp = CompensationConfig(name, lambda0=LAM, eta_lambda=0.0)
    runtimes = [StageRuntime(model, plan, j, OptimizerConfig("sgd", lr=LR), comp) for j in range(P)]
    history = [WEIGHTS[0]]  # stage 0's weight after each update: history[v] is version v
    at_forward: dict[int, list[float]] = {}
    checked = 0

    def value(j: int) -> float:
        return runtimes[j].layers[0].weight.item()

    def on_op(op, result):
        nonlocal checked
        if op.kind == "fwd":
            at_forward.setdefault(op.sample, []).append(value(op.stage))
            return
        if op.stage != 0:
            return
        w0, w1, w2 = at_forward[op.sample]
        x = _x(op.sample)
        g = (x * w0 * w1 * w2) * x * w1 * w2  # d/dw0 of ½ y², y = x·w0·w1·w2
        tau = result.staleness
        chain = history[result.version : result.version + tau + 1]
        steps = [b - a for a, b in itertools.pairwise(history)]
        expected = history[-1] - LR * _hand(name, g, chain, tau, steps)
        assert value(0) == pytest.approx(expected, rel=1e-5)
        assert runtimes[0].current_version == len(history)
        history.append(value(0))
        checked += tau > 0

    drive(
        runtimes,
        async_1f1b(P, 1, 12, tf=1, tb=2, td=3),
        lambda s: torch.tensor([[_x(s)]]),
        lambda s, y: 0.5 * y.square().sum(),
        on_op,
    )
    assert checked >= 8  # most updates of stage 0 apply a gradient 2 updates stale


def test_iter_fisher_keeps_the_whole_chain_and_the_others_only_the_stashes():
    # Omission makes stage 0's in-flight stashes non-contiguous (every other datum).
    P = 3
    held = {}
    for name in ("fisher", "iter-fisher"):
        model = linear_chain(3, 2)
        workers = tuple(WorkerConfig(n, False, (1, 1, 1), (1, 0, 0)) for n in range(2))
        plan = Plan("ferret", (0, 1, 2, 3), workers, default_placement(2, P), 1.0)
        runtimes = [StageRuntime(model, plan, j, compensation=CompensationConfig(name)) for j in range(P)]
        seen = []

        def on_op(op, result, rt=runtimes[0], seen=seen):
            ids = rt.versions.held_ids
            seen.append(len(ids))
            if rt.versions.keep_chain:
                assert ids == tuple(range(ids[0], ids[-1] + 1)), "the chain has a gap"

        X = torch.randn(40, 1, 2, generator=torch.Generator().manual_seed(0))
        drive(runtimes, async_1f1b(P, 2, 40, tf=2, tb=4, td=3), X.__getitem__, lambda s, z: z.sum(), on_op)
        held[name] = max(seen)
    assert held["iter-fisher"] > held["fisher"]


def test_compensator_state_is_counted_only_when_it_exists():
    def ledger_after(name: str, eta: float) -> tuple[dict[str, int], list[float]]:
        model = linear_chain(2, 3)
        plan = Plan("pipedream", (0, 1, 2), (WorkerConfig.default(0, 2),), default_placement(1, 2), 1.0)
        ledger = ByteLedger()
        runtimes = [
            StageRuntime(model, plan, j, compensation=CompensationConfig(name, eta_lambda=eta), ledger=ledger)
            for j in range(2)
        ]
        X = torch.randn(10, 1, 3, generator=torch.Generator().manual_seed(0))
        drive(runtimes, async_1f1b(2, 1, 10, tf=1, tb=2, td=3), lambda s: X[s], lambda s, z: z.sum(), None)
        return ledger.snapshot(), [getattr(rt.compensator, "lam", math.nan) for rt in runtimes]

    per_stage = (3 * 3 + 3) * 4
    snapshot, lams = ledger_after("iter-fisher", 0.0)
    assert "compensator" not in snapshot and lams == [0.2, 0.2]
    snapshot, lams = ledger_after("iter-fisher", 1e-1)
    assert snapshot["compensator"] == 2 * 2 * per_stage  # v_r and v_a in each of the 2 stages
    assert lams[0] != 0.2  # stage 0 sees stale gradients and tunes λ
    assert lams[1] == 0.2  # the last stage is never stale: nothing to tune
    snapshot, _ = ledger_after("gap-aware", 0.0)
    assert snapshot["compensator"] == 2 * per_stage  # C, once each stage has stepped
