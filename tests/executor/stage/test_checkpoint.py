"""A quiescent stage saved and loaded into a fresh runtime continues exactly as the original."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from executor.compensation import CompensationConfig
from executor.stage import OptimizerConfig, StageRuntime
from executor.stage.checkpoint import load_stage_state, stage_state
from planner.plan import Plan, WorkerConfig, default_placement
from tests.executor.stage.models import linear_chain
from tests.executor.stage.schedules import async_1f1b, drive

WIDTH = 3
PLAN = Plan(
    "ferret",
    (0, 1, 2),
    (WorkerConfig(0, False, (3, 1), (1, 0)), WorkerConfig(1, True, (1, 2), (0, 0))),
    default_placement(2, 2),
    1.0,
)


def _runtimes(compensation: str) -> list[StageRuntime]:
    model = linear_chain(2, WIDTH)
    optimizer = OptimizerConfig("adam", lr=0.05)
    return [StageRuntime(model, PLAN, j, optimizer, CompensationConfig(compensation)) for j in range(2)]


def _play(runtimes, ops, offset: int) -> None:
    gen = torch.Generator().manual_seed(offset)
    data = torch.randn(100, 1, WIDTH, generator=gen)
    moved = [dataclasses.replace(op, sample=op.sample + offset) for op in ops]
    drive(runtimes, moved, lambda s: data[s - offset], lambda s, z: (z - float(s % 3)).pow(2).sum())


def _reload(runtimes, compensation: str) -> list[StageRuntime]:
    fresh = _runtimes(compensation)
    for old, new in zip(runtimes, fresh, strict=True):
        buffer = io.BytesIO()
        torch.save(stage_state(old), buffer)
        buffer.seek(0)
        load_stage_state(new, torch.load(buffer, weights_only=False))
    return fresh


@pytest.mark.parametrize("compensation", ["none", "iter-fisher", "gap-aware"])
def test_a_reloaded_stage_continues_bit_for_bit(compensation):
    ops = async_1f1b(2, 2, 7)  # stale gradients; worker 0 leaves an open group (c^a = 3) and omits
    straight, interrupted = _runtimes(compensation), _runtimes(compensation)
    _play(straight, ops, 0)
    _play(interrupted, ops, 0)
    assert straight[0].open_groups == 1 and straight[0].optimizer.steps > 0
    resumed = _reload(interrupted, compensation)
    _play(straight, ops, 50)
    _play(resumed, ops, 50)
    for a, b in zip(straight, resumed, strict=True):
        assert a.current_version == b.current_version
        assert torch.equal(a.versions.current.flat, b.versions.current.flat)
        assert a.held_by_category() == b.held_by_category()


def test_only_a_quiescent_stage_is_saved_and_only_into_a_fresh_one():
    runtimes = _runtimes("none")
    runtimes[0].forward(0, 0, torch.ones(1, WIDTH))
    with pytest.raises(RuntimeError, match="in flight"):
        stage_state(runtimes[0])
    with pytest.raises(RuntimeError, match="fresh runtime"):
        load_stage_state(runtimes[1], stage_state(_runtimes("none")[0]))
