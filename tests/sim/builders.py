"""Small profiles and plans for the simulator's tests (times in binary fractions, so exact)."""

from __future__ import annotations

from planner.plan import Plan, WorkerConfig, default_placement
from planner.profile import LayerProfile, ModelProfile


def balanced_profile(stages: int, layers_per_stage: int = 2, t_fwd: float = 0.125, t_bwd: float = 0.25) -> ModelProfile:
    """Every stage takes `t_fwd`/`t_bwd`; sizes differ per layer so that a wrong stage shows."""
    layers = []
    for i in range(stages * layers_per_stage):
        layers.append(
            LayerProfile(f"l{i}", t_fwd / layers_per_stage, t_bwd / layers_per_stage, 1000 + 10 * i, 100 + 7 * i)
        )
    return ModelProfile("balanced", tuple(layers), source="synthetic")


def even_partition(stages: int, layers_per_stage: int = 2) -> tuple[int, ...]:
    return tuple(range(0, stages * layers_per_stage + 1, layers_per_stage))


def make_plan(
    workers: list[WorkerConfig],
    stages: int,
    interval_s: float,
    strategy: str = "ferret",
    layers_per_stage: int = 2,
    decay_per_s: float = 1.0,
    minibatch: int = 1,
    placement: tuple[tuple[int, ...], ...] | None = None,
) -> Plan:
    return Plan(
        strategy=strategy,
        partition=even_partition(stages, layers_per_stage),
        workers=tuple(workers),
        placement=placement if placement is not None else default_placement(len(workers), stages),
        arrival_interval_s=interval_s,
        decay_per_s=decay_per_s,
        minibatch=minibatch,
    ).validate()


def plain_workers(count: int, stages: int, recompute: bool = False) -> list[WorkerConfig]:
    return [WorkerConfig.default(n, stages, recompute) for n in range(count)]
