"""Byte and FLOP budgets of budgeted OCL (aL-SAR, SPEC §10.1).

**Memory** (`--memory-budget SIZE`): everything a run *stores* counts — the model (parameters
and buffers), the optimizer's state, every extra stored model or statistic (LwF's teacher,
MAS's importance, a sampler's use counts and class statistics, the freezing statistics), the
stream data a framework holds (its window) and the replay memories at their stored dtype
(uint8 images). Transient tensors of one step (the batch, saved activations, gradients) are
not stored state and are not in the budget, as in the paper. `plan_memory` sizes every fixed
part from the model and the configuration (the bytes the ledger will charge, category by
category) and gives what is left to the replay memories: `capacity = left // Σ slot bytes`,
one capacity for every memory (the algorithm's and Camel's), a slot costing the sample at its
stored dtype plus the sampler's per-sample state. `MemoryPlan.parts` holds the final bytes per
ledger category; `total_bytes` is their sum. `StoredLedger` checks at every charge that the
stored categories never exceed the budget.

**Compute** (`--compute-budget FLOPS`): training FLOPs per stream sample. Methods are put on
equal compute by iterations per sample (the paper's protocol): a method's nominal step (its
passes over a `batch_rows`-row step, one of them new, counted by `CostModel.flops`) costs `N`
FLOPs, so it takes `C / N` steps per arrival (`iterations_per_sample`). What a run really spends —
less with freezing, plus a sampler's bookkeeping — is measured and reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from executor.ledger import ByteLedger, module_bytes, optimizer_state_bytes
from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.algorithms.base import algorithm_class
from executor.ocl.cost import CostModel
from executor.stage.optim import OptimizerConfig
from planner.errors import FerretError

# Ledger categories that are stored state (in the byte budget); the rest live for one step.
STORED_CATEGORIES = frozenset(
    {"weights", "optimizer", "window", "replay", "camel_replay", "teacher", "importance", "sampler", "freezing"}
)


def optimizer_bytes(model: nn.Module, optimizer: OptimizerConfig) -> int:
    """The optimizer's state after its first step, measured on a throwaway copy of the shapes."""
    params = [torch.zeros_like(p, requires_grad=True) for p in model.parameters() if p.requires_grad]
    built = optimizer.build(params)  # type: ignore[arg-type]
    for p in params:
        p.grad = torch.zeros_like(p)
    built.step()
    return optimizer_state_bytes(built)


@dataclass(frozen=True)
class MemoryPlan:
    """A byte budget split into stored parts (bytes per ledger category, replay at capacity)."""

    budget_bytes: int
    parts: dict[str, int]
    replay_capacity: int
    slot_bytes: int = 0  # bytes one replay slot costs, summed over the run's memories
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())

    @property
    def fixed_bytes(self) -> int:
        """What the budget holds whatever the replay capacity."""
        return self.total_bytes - self.replay_capacity * self.slot_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "budget_bytes": self.budget_bytes,
            "total_bytes": self.total_bytes,
            "fixed_bytes": self.fixed_bytes,
            "unused_bytes": self.budget_bytes - self.total_bytes,
            "parts": dict(self.parts),
            "replay_capacity": self.replay_capacity,
            "replay_slot_bytes": self.slot_bytes,
            **self.extra,
        }


def plan_memory(
    budget_bytes: int,
    *,
    model: nn.Module,
    optimizer: OptimizerConfig,
    algorithm: AlgorithmConfig,
    num_classes: int,
    bytes_per_sample: int,
    held_samples: int,
    framework_memories: int = 0,
) -> MemoryPlan:
    """Split `budget_bytes`; raise `FerretError` (one line) if the fixed parts do not fit, or if
    a run that replays cannot keep one sample."""
    cls = algorithm_class(algorithm)
    weights = module_bytes(model)
    if budget_bytes < weights:
        raise FerretError(f"memory budget of {budget_bytes} B is less than the model itself ({weights} B)")
    extra, state_per_slot = cls.stored_state_bytes(algorithm, model, num_classes)
    fixed = {
        "weights": weights,
        "optimizer": optimizer_bytes(model, optimizer),
        "window": held_samples * bytes_per_sample,
        **extra,
    }
    left = budget_bytes - sum(fixed.values())
    if left < 0:
        listed = ", ".join(f"{k} {v} B" for k, v in fixed.items() if v)
        raise FerretError(f"memory budget of {budget_bytes} B cannot hold the run's fixed state ({listed})")
    memories = [("replay", bytes_per_sample + state_per_slot)] if cls.replay_memory else []
    memories += [("camel_replay", bytes_per_sample)] * framework_memories
    if not memories:
        return MemoryPlan(budget_bytes, fixed, 0)
    slot = sum(size for _, size in memories)
    capacity = left // slot
    if capacity < 1:
        raise FerretError(
            f"memory budget of {budget_bytes} B leaves {left} B for replay after the fixed state, "
            f"less than one sample ({slot} B)"
        )
    parts = dict(fixed)
    parts["replay"] = capacity * bytes_per_sample if cls.replay_memory else 0
    if state_per_slot:
        parts["sampler"] = parts.get("sampler", 0) + capacity * state_per_slot
    if framework_memories:
        parts["camel_replay"] = capacity * bytes_per_sample
    return MemoryPlan(budget_bytes, {k: v for k, v in parts.items() if v}, capacity, slot)


class StoredLedger(ByteLedger):
    """A byte ledger that also tracks the stored categories' sum, its peak, and an optional limit
    (a memory budget) that it checks at every charge."""

    def __init__(self, limit: int | None = None) -> None:
        super().__init__()
        self.limit = limit
        self.stored = 0
        self.stored_peak = 0

    def alloc(self, category: str, nbytes: int) -> None:
        super().alloc(category, nbytes)
        if category in STORED_CATEGORIES:
            self.stored += nbytes
            self.stored_peak = max(self.stored_peak, self.stored)
            if self.limit is not None and self.stored > self.limit:
                raise RuntimeError(
                    f"stored state of {self.stored} B exceeds the memory budget of {self.limit} B: {self.snapshot()}"
                )

    def free(self, category: str, nbytes: int) -> None:
        super().free(category, nbytes)
        if category in STORED_CATEGORIES:
            self.stored -= nbytes


@dataclass(frozen=True)
class ComputeBudget:
    """Training FLOPs per stream sample; `spend_saved`: FLOPs a step saves (freezing) buy more
    steps (the paper's Fig. 1 idea) instead of being left unspent."""

    flops_per_sample: float
    spend_saved: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.flops_per_sample) and self.flops_per_sample > 0):
            raise FerretError(f"--compute-budget must be a positive number of FLOPs, got {self.flops_per_sample}")


def nominal_step_flops(config: AlgorithmConfig, cost_model: CostModel, batch_rows: int) -> float:
    """FLOPs of the algorithm's nominal step: `batch_rows` rows, one of them new, nothing frozen."""
    return cost_model.flops(algorithm_class(config).step_passes(config, batch_rows))


def iterations_per_sample(
    budget: ComputeBudget, config: AlgorithmConfig, cost_model: CostModel, batch_rows: int
) -> float:
    nominal = nominal_step_flops(config, cost_model, batch_rows)
    if nominal <= 0:
        raise FerretError("--compute-budget needs a profile with FLOPs (this one counts none)")
    return budget.flops_per_sample / nominal
