"""The OCL-algorithm interface (SPEC §8) and its registry.

An algorithm is what a learner does *around* a gradient step, independent of who schedules the
steps (a sequential framework of SPEC §7 or a pipeline of Ferret workers). Per step, a caller:

1. `batch = algorithm.observe(model, x, y, weight=..., num_new=..., task=...)` — hand in the
   rows the scheduler chose; get back the rows to train on (replay appended) plus whatever the
   loss needs (LwF's teacher logits) and the extra work done (`batch.cost`).
2. Forward `batch.x`; `loss = algorithm.loss(logits, batch)`; for every group of parameters the
   caller updates (the whole model, or one pipeline stage's), add
   `algorithm.penalty(named_parameters)` when `algorithm.has_penalty()` (MAS). Backward, step.
3. `algorithm.after_update(model, batch)` — the update is applied: insert new rows into the
   replay memory, accumulate importances, track seen classes.

State the algorithm stores is charged to `context.ledger` under its own categories ("replay",
"teacher", "importance"), so a learner's measured memory includes it. Parameter names are the
model's own (`model.named_parameters()`), so a pipeline stage may pass just its slice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from executor.ledger import ByteLedger
from executor.ocl.batch import TrainBatch, weighted_cross_entropy
from planner.config_field import config_field
from planner.errors import FerretError
from planner.registry import Registry


def algorithm_names() -> list[str]:
    import executor.ocl.algorithms.catalog  # noqa: F401  (registers the built-in algorithms)

    return sorted(ALGORITHMS)


@dataclass(frozen=True)
class AlgorithmConfig:
    """Hyper-parameters of every algorithm; each reads the fields it needs.

    `replay_batch=None` replays as many buffer rows as the step has new rows (a 1:1 mix).
    `consolidate_every=0` makes LwF and MAS consolidate (snapshot the teacher / anchor the
    weights) only when a new task starts; a positive value also consolidates every that many
    trained new samples, for task-free streams.
    """

    name: str = config_field(
        "vanilla", help="OCL algorithm: {names}", names=algorithm_names, flag="algorithm", group="what runs"
    )
    buffer_samples: int = config_field(
        5000, help="replay buffer size in samples", unit="int", ge=1, exclusive="replay buffer size"
    )
    replay_batch: int | None = config_field(
        None, help="replayed rows per step", unit="int", ge=1, default_text="as many as new rows"
    )
    mir_candidates: int = config_field(50, help="MIR: buffer candidates scored per step", unit="int", ge=1)
    lwf_alpha: float = config_field(1.0, help="LwF: distillation weight", unit="float", ge=0)
    lwf_temperature: float = config_field(2.0, help="LwF: softmax temperature", unit="float", gt=0)
    mas_lambda: float = config_field(1.0, help="MAS: penalty weight", unit="float", ge=0)
    consolidate_every: int = config_field(
        0,
        help="LwF/MAS: also consolidate every this many trained samples (0: at task boundaries only)",
        unit="int",
        ge=0,
    )

    def validate(self) -> AlgorithmConfig:
        if self.buffer_samples < 1:
            raise FerretError(f"replay buffer must hold at least 1 sample, got {self.buffer_samples}")
        if self.replay_batch is not None and self.replay_batch < 1:
            raise FerretError(f"--replay-batch must be ≥ 1, got {self.replay_batch}")
        if self.mir_candidates < 1:
            raise FerretError(f"--mir-candidates must be ≥ 1, got {self.mir_candidates}")
        if self.lwf_alpha < 0 or self.lwf_temperature <= 0:
            raise FerretError("LwF needs --lwf-alpha ≥ 0 and --lwf-temperature > 0")
        if self.mas_lambda < 0:
            raise FerretError(f"--mas-lambda must be ≥ 0, got {self.mas_lambda}")
        if self.consolidate_every < 0:
            raise FerretError(f"--consolidate-every must be ≥ 0, got {self.consolidate_every}")
        return self


@dataclass(frozen=True)
class AlgorithmContext:
    """What an algorithm learns about the run it joins."""

    num_classes: int
    bytes_per_sample: int
    ledger: ByteLedger
    rng: np.random.Generator
    lr: float


class OCLAlgorithm:
    """Vanilla behaviour; subclasses override the hooks they need (see the module docstring)."""

    name: ClassVar[str] = "vanilla"

    def __init__(self, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        self.config = config
        self.context = context

    def observe(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        weight: torch.Tensor | None = None,
        num_new: int | None = None,
        task: int = 0,
    ) -> TrainBatch:
        """The batch to train on. `num_new` (default: every row) leading rows are fresh data."""
        return TrainBatch(x, y, num_new=x.shape[0] if num_new is None else num_new, weight=weight, task=task)

    def loss(self, logits: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
        return weighted_cross_entropy(logits, batch.y, batch.weight)

    def has_penalty(self) -> bool:
        """Whether `penalty` currently adds a term (callers may skip calling it when not)."""
        return False

    def penalty(self, named_parameters: Iterable[tuple[str, nn.Parameter]]) -> torch.Tensor | None:
        """An extra loss term on these parameters, or `None` (the algorithm has none)."""
        return None

    def after_update(self, model: nn.Module, batch: TrainBatch) -> None:
        """Called once the optimizer step on `batch` is applied. Vanilla keeps no state."""
        return None


class Consolidation:
    """Decides when LwF/MAS take a new reference point: at a new task, or every N new samples."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._task = 0
        self._since = 0
        self.count = 0

    def due(self, task: int, new_rows: int) -> bool:
        """Call once per step before training on it; True if the reference must be refreshed now."""
        due = task > self._task or (self.every > 0 and self._since >= self.every)
        if due:
            self._task = max(self._task, task)
            self._since = 0
            self.count += 1
        self._since += new_rows
        return due


AlgorithmClass = type[OCLAlgorithm]
ALGORITHMS: Registry[AlgorithmClass] = Registry("OCL algorithm", {"vanilla": OCLAlgorithm})


def register_algorithm(name: str) -> Callable[[AlgorithmClass], AlgorithmClass]:
    """`ALGORITHMS.register` that also gives the class its `name`."""

    def deco(cls: AlgorithmClass) -> AlgorithmClass:
        cls.name = name
        return ALGORITHMS.add(name, cls)

    return deco


def build_algorithm(config: AlgorithmConfig, context: AlgorithmContext) -> OCLAlgorithm:
    algorithm_names()  # loads the built-in algorithms; an unknown name is one line from the registry
    return ALGORITHMS[config.name](config.validate(), context)
