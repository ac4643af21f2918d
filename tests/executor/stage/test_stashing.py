"""Weight stashing on a chain of scalar weights, checked against a hand-written reference.

The model computes `y = x · Π_l w_l` with loss `½ (y − t)²`, so the gradient of layer `l` is
`(y − t) · x · Π_{m≠l} w_m`. The reference below keeps its own weight history: at a datum's
forward through stage `j` it records that stage's weights, and at the datum's backward it
evaluates the formula with the weights recorded at forward time (what weight stashing means),
averages over accumulation groups and takes an SGD step. Nothing of the runtime is reused.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from executor.stage import OptimizerConfig, StageRuntime
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import scalar_chain
from tests.executor.stage.schedules import async_1f1b, drive

LR = 0.05
INITIAL = [1.1, 0.9, 1.05, 0.95, 1.2, 0.8]


def _inputs(sample: int) -> tuple[float, float]:
    return 0.5 + 0.1 * (sample % 7), 1.0 - 0.05 * (sample % 5)


class Reference:
    """Asynchronous SGD with weight stashing on the scalar chain, in plain Python floats."""

    def __init__(self, partition: tuple[int, ...], accumulation: tuple[int, ...]) -> None:
        self.partition = partition
        self.accumulation = accumulation
        self.weights = [INITIAL[: partition[-1]][a:b] for a, b in itertools.pairwise(partition)]
        self.stashed: dict[tuple[int, int], list[float]] = {}  # (sample, stage) -> weights at forward
        self.groups: list[list[list[float]]] = [[] for _ in self.weights]
        self.versions = [0] * len(self.weights)
        self.forward_version: dict[tuple[int, int], int] = {}

    def forward(self, sample: int, stage: int) -> None:
        self.stashed[(sample, stage)] = list(self.weights[stage])
        self.forward_version[(sample, stage)] = self.versions[stage]

    def backward(self, sample: int, stage: int) -> None:
        x, t = _inputs(sample)
        used = [w for j in range(len(self.weights)) for w in self.stashed[(sample, j)]]
        y = x * math.prod(used)
        offset = self.partition[stage]
        grads = [
            (y - t) * x * math.prod(w for m, w in enumerate(used) if m != offset + i)
            for i in range(len(self.weights[stage]))
        ]
        self.groups[stage].append(grads)
        if len(self.groups[stage]) == self.accumulation[stage]:
            mean = [sum(col) / len(self.groups[stage]) for col in zip(*self.groups[stage], strict=True)]
            self.weights[stage] = [w - LR * g for w, g in zip(self.weights[stage], mean, strict=True)]
            self.groups[stage] = []
            self.versions[stage] += 1


def _run(partition: tuple[int, ...], accumulation: tuple[int, ...], num_data: int, recompute: bool) -> dict:
    P = len(partition) - 1
    model = scalar_chain(INITIAL[: partition[-1]])
    plan = Plan(
        "pipedream", partition, (WorkerConfig(0, recompute, accumulation, (0,) * P),), default_placement(1, P), 1.0
    )
    runtimes = [StageRuntime(model, plan, j, OptimizerConfig("sgd", lr=LR)) for j in range(P)]
    ref = Reference(partition, accumulation)
    forward_versions: dict[tuple[int, int], int] = {}
    backward_versions: dict[tuple[int, int], int] = {}
    staleness: list[dict[int, int]] = [{} for _ in range(P)]
    max_held = [0] * P

    def on_op(op, result) -> None:
        if op.kind == "fwd":
            ref.forward(op.sample, op.stage)
            forward_versions[(op.sample, op.stage)] = result.version
        else:
            ref.backward(op.sample, op.stage)
            backward_versions[(op.sample, op.stage)] = result.version
            staleness[op.stage][op.sample] = result.staleness
        for j, rt in enumerate(runtimes):
            max_held[j] = max(max_held[j], rt.versions.held)
            got = [p.item() for layer in rt.layers for p in layer.parameters()]
            assert got == pytest.approx(ref.weights[j], rel=1e-5), f"stage {j} after {op}"

    def inputs(sample: int) -> torch.Tensor:
        return torch.tensor([[_inputs(sample)[0]]])

    def loss(sample: int, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (y - _inputs(sample)[1]).square().sum()

    drive(runtimes, async_1f1b(P, 1, num_data, tf=1, tb=2, td=3), inputs, loss, on_op)
    return {
        "forward": forward_versions,
        "backward": backward_versions,
        "reference_forward": ref.forward_version,
        "staleness": staleness,
        "max_held": max_held,
        "updates": [rt.current_version for rt in runtimes],
    }


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("partition", [(0, 1, 2), (0, 2, 3, 6)])
def test_pipedream_backward_uses_the_forward_version_and_matches_the_hand_update(partition, recompute):
    P = len(partition) - 1
    out = _run(partition, (1,) * P, num_data=24, recompute=recompute)
    assert out["backward"] == out["forward"]  # every backward ran on its forward's stash
    assert out["forward"] == out["reference_forward"]
    # PipeDream: stage j holds P − j versions and, once the pipeline is full, applies
    # gradients that are exactly P − 1 − j updates stale (x_{t+1} = x_t − η g_{t−d+1}).
    assert out["max_held"] == [P - j for j in range(P)]
    for j in range(P):
        steady = [tau for sample, tau in out["staleness"][j].items() if sample >= P]
        assert set(steady) == {P - 1 - j}
    assert out["updates"] == [24] * P


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("partition", [(0, 1, 2), (0, 2, 3, 6)])
def test_pipedream_2bw_holds_two_versions_and_matches_the_hand_update(partition, recompute):
    P = len(partition) - 1
    accumulation = (P,) * P  # 2BW accumulates over m ≥ P micro-batches per update
    out = _run(partition, accumulation, num_data=24, recompute=recompute)
    assert out["backward"] == out["forward"]
    assert max(out["max_held"]) <= 2  # double-buffered weights
    for j in range(P):
        assert out["updates"][j] == 24 // accumulation[j]
        assert max(out["staleness"][j].values()) <= 1  # x_{t+1} = x_t − η g_{t−1}
