"""The StageRuntimes of a plan over a model, and the per-stage numbers the executor needs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from executor.compensation import CompensationConfig
from executor.ledger import ByteLedger
from executor.models.base import LayeredModel
from executor.stage import OptimizerConfig, StageRuntime
from planner.plan import Plan
from planner.profile import ModelProfile


def build_stages(
    model: LayeredModel,
    plan: Plan,
    optimizer: OptimizerConfig,
    compensation: CompensationConfig | Sequence[CompensationConfig] | None,
    ledger: ByteLedger,
) -> list[StageRuntime]:
    """One runtime per stage, all charging one ledger (its peak is the pipeline's); one
    compensation for every stage, or one per stage. `optimizer` is the run's, so a one-stage
    pipeline steps exactly like the sequential Learner."""
    P = plan.num_stages
    per_stage = list(compensation) if isinstance(compensation, Sequence) else [compensation] * P
    if len(per_stage) != P:
        raise ValueError(f"{len(per_stage)} compensation configs for {P} stages")
    return [StageRuntime(model, plan, j, optimizer, per_stage[j], ledger) for j in range(P)]


def parameter_names(model: LayeredModel, plan: Plan) -> list[tuple[str, ...]]:
    """Per stage, the model's names of its parameters in the order a StageRuntime lays them out
    (modules in `modules()` order, then each module's own parameters) — the names OCL
    algorithms key their state by (`model.named_parameters()`)."""
    names: dict[int, str] = {id(p): name for name, p in model.named_parameters()}
    layers = model.layers
    out = []
    for j in range(plan.num_stages):
        stage: list[str] = []
        seen: set[int] = set()
        for index in plan.stage_layers(j):
            for module in layers[index].modules():
                for param in module._parameters.values():
                    if param is not None and id(param) not in seen:
                        seen.add(id(param))
                        stage.append(names[id(param)])
        out.append(tuple(stage))
    return out


def stage_flops(profile: ModelProfile, plan: Plan) -> list[float]:
    """Forward FLOPs of one sample through each stage (SPEC §10.1; a backward costs twice that)."""
    per_sample = profile.fwd_flops / profile.batch_size
    return [float(np.sum(per_sample[plan.partition[j] : plan.partition[j + 1]])) for j in range(plan.num_stages)]
