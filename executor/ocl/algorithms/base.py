"""The OCL-algorithm interface (SPEC §8) and its registry.

An algorithm is what a learner does *around* a gradient step, independent of who schedules the
steps (a sequential framework of SPEC §7 or a pipeline of Ferret workers). Per step, a caller:

1. `batch = algorithm.observe(model, given)` — hand in the rows the scheduler chose (a
   `TrainBatch`: `TrainBatch.fresh(x, y)` when every row is fresh data); get back the rows to train on (replay appended) plus whatever the
   loss needs (LwF's teacher logits) and the extra work done (`batch.cost`).
2. Forward `batch.x`; `loss = algorithm.loss(logits, batch)`; for every group of parameters the
   caller updates (the whole model, or one pipeline stage's), add
   `algorithm.penalty(named_parameters)` when `algorithm.has_penalty()` (MAS). Backward, step.
3. `algorithm.after_update(model, batch)` — the update is applied: insert new rows into the
   replay memory, accumulate importances, track seen classes.

Budgeted OCL (SPEC §10) adds three hooks a learner calls around its backward, so that any
algorithm can freeze layers (`--freezing adaptive`) and a sampler can learn from the step:
`with algorithm.training_forward(model): logits = model(x)`, then
`n = algorithm.frozen_layers(model, logits, batch)` (back-propagate only into layers `n..`),
then, with the gradients in place, `algorithm.after_backward(model, batch)`. Work these hooks
do beyond the passes is added to `batch.cost` as they learn it. `stored_state_bytes` predicts
what an algorithm will store, for a byte budget (`executor.ocl.budget`).

`state_dict()` / `load_state_dict(state, model)` carry everything an algorithm learned besides
the weights through a checkpoint (freezing's statistics; ER's memory and sampler; LwF's teacher;
MAS's importances and anchor), so a resumed run goes on bit for bit.

State the algorithm stores is charged to `context.ledger` under its own categories ("replay",
"teacher", "importance"), so a learner's measured memory includes it. Parameter names are the
model's own (`model.named_parameters()`), so a pipeline stage may pass just its slice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from executor.ledger import ByteLedger
from executor.models.base import require_layered
from executor.ocl.batch import TrainBatch, weighted_cross_entropy
from executor.ocl.cost import StepCost
from executor.ocl.freezing import AdaptiveFreezing
from executor.ocl.samplers import SAMPLERS, ReplaySampler
from planner.config_field import check_bounds, config_field
from planner.errors import FerretError
from planner.registry import Registry
from sim.algorithm_passes import NO_PASSES, AlgorithmPasses


def algorithm_names() -> list[str]:
    import executor.ocl.algorithms.catalog  # noqa: F401  (registers the built-in algorithms)

    return sorted(ALGORITHMS)


FREEZING = ("none", "adaptive")
# The help section of the budget flags (SPEC §10); RunSpec's budget fields share it.
BUDGETS_TITLE = "budgets (aL-SAR, docs/ocl.md: Budgeted OCL)"


@dataclass(frozen=True)
class AlgorithmConfig:
    """Hyper-parameters of every algorithm; each reads the fields it needs.

    `replay_batch=None` replays as many buffer rows as the step has new rows (a 1:1 mix).
    `consolidate_every=0` makes LwF and MAS consolidate (snapshot the teacher / anchor the
    weights) only when a new task starts; a positive value also consolidates every that many
    trained new samples, for task-free streams.
    `sampler` / `freezing` `None` take the algorithm's default (aL-SAR: `similarity-aware` /
    `adaptive`; others: `uniform` / `none`).
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
    lwf_temperature: float = config_field(2.0, help="LwF: softmax temperature", unit="float", ge=1e-6, le=1e6)
    mas_lambda: float = config_field(1.0, help="MAS: penalty weight", unit="float", ge=0)
    consolidate_every: int = config_field(
        0,
        help="LwF/MAS: also consolidate every this many trained samples (0: at task boundaries only)",
        unit="int",
        ge=0,
    )
    # Budgeted OCL (aL-SAR, SPEC §10): replay sampler and adaptive layer freezing.
    sampler: str | None = config_field(
        None,
        help="replay sampler of an algorithm with a replay memory: {names}",
        names=SAMPLERS.names,
        default_text="similarity-aware for alsar, else uniform",
        group=BUDGETS_TITLE,
    )
    # A temperature outside [1e-6, 1e6] is argmin or uniform already; beyond them use/T overflows.
    sampler_temperature: float = config_field(
        2.0,
        help="similarity-aware sampler: softmax temperature T",
        unit="float",
        ge=1e-6,
        le=1e6,
        group=BUDGETS_TITLE,
    )
    freezing: str | None = config_field(
        None,
        help="layer freezing",
        choices=FREEZING,
        default_text="adaptive for alsar, else none",
        group=BUDGETS_TITLE,
    )
    unfreeze_rate: float = config_field(
        0.25,
        help="adaptive freezing: probability that a batch trains every layer",
        unit="float",
        ge=0,
        le=1,
        group=BUDGETS_TITLE,
    )

    def validate(self) -> AlgorithmConfig:
        """Every field against its declaration (`check_bounds`: types, bounds, choices), and the
        sampler's name against the registry (one line listing the samplers)."""
        check_bounds(self, "algorithm")
        if self.sampler is not None:
            SAMPLERS.canonical(self.sampler)
        return self


@dataclass(frozen=True)
class AlgorithmContext:
    """What an algorithm learns about the run it joins. `layer_flops`: forward FLOPs of each
    model layer for one row (SPEC §10.1), from the run's profile; empty: counted from the model."""

    num_classes: int
    bytes_per_sample: int
    ledger: ByteLedger
    rng: np.random.Generator
    lr: float
    layer_flops: tuple[float, ...] = ()


class OCLAlgorithm:
    """Vanilla behaviour; subclasses override the hooks they need (see the module docstring)."""

    name: ClassVar[str] = "vanilla"
    default_freezing: ClassVar[str] = "none"
    # True: a step trains on memory only and new rows enter the memory first (aL-SAR), so the
    # step's logits hold no prediction of the new rows.
    memory_first: ClassVar[bool] = False
    # True: keeps a replay memory (sized by `buffer_samples`, or by a byte budget).
    replay_memory: ClassVar[bool] = False
    # The replay sampler of an algorithm with a replay memory (its draws, what it learns), and
    # the one it takes without `--sampler`.
    sampler: ReplaySampler | None = None
    default_sampler: ClassVar[str | None] = None
    # When the passes `step_passes` adds to the training step run, for the twin
    # (`sim.algorithm_passes.PHASES`; `twin_passes`); None: it adds none.
    extra_passes_at: ClassVar[str | None] = None

    def __init__(self, config: AlgorithmConfig, context: AlgorithmContext) -> None:
        self.config = config
        self.context = context
        self.freezing_mode = config.freezing or self.default_freezing
        self.freezing: AdaptiveFreezing | None = None
        # Its own random stream, spawned (which draws nothing from the algorithm's stream), so that
        # switching freezing on never shifts the replay draws.
        self._freezing_rng = context.rng.spawn(1)[0] if self.freezing_mode == "adaptive" else None

    def observe(self, model: nn.Module, given: TrainBatch, batch_rows: int | None = None) -> TrainBatch:
        """The batch to train on, from the rows the scheduler chose (`given`: its `num_new`
        leading rows are fresh data). `batch_rows`: the step's size when the caller fixes it
        (algorithms with a memory fill the step to it); vanilla trains on the rows given."""
        return given

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

    # --- budgeted OCL hooks (SPEC §10) ---
    def training_forward(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        """Wraps the step's training forward (a sampler may record what its backward needs)."""
        return contextlib.nullcontext()

    def frozen_layers(self, model: nn.Module, logits: torch.Tensor, batch: TrainBatch) -> int:
        """How many leading layers of `model` this step does not back-propagate into."""
        if self._freezing_rng is None:
            return 0
        freezing = self._adaptive_freezing(model)
        classifier = require_layered(model, "adaptive freezing").classifier
        decision = freezing.decision_flops(batch.rows, logits.shape[1], classifier.in_features)
        frozen = freezing.choose(logits.detach(), batch.y, classifier)
        batch.cost = batch.cost + StepCost(flops=decision)
        return frozen

    def after_backward(self, model: nn.Module, batch: TrainBatch) -> None:
        """The backward ran (layers `batch.frozen_layers..`); gradients are in `.grad`."""
        if self.freezing is not None:
            layers = require_layered(model, "adaptive freezing").layers
            self.stage_gradients(
                model, batch, 0, [[p.grad for p in layer.parameters() if p.grad is not None] for layer in layers]
            )

    @property
    def freezes(self) -> bool:
        """Whether this algorithm decides a frozen prefix per step (`--freezing adaptive`)."""
        return self._freezing_rng is not None

    def state_dict(self) -> dict[str, Any]:
        """Everything this algorithm's future steps depend on besides the weights (copies): here
        adaptive freezing's statistics once made (in a pipeline, every rank's own copy); a
        subclass that learns more adds it."""
        return {"freezing": None if self.freezing is None else self.freezing.state_dict()}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        """Continue from `state_dict()` of the same algorithm and config over `model`."""
        if state["freezing"] is not None:
            self._adaptive_freezing(model).load_state_dict(state["freezing"])

    def freezing_state(self, model: nn.Module) -> AdaptiveFreezing | None:
        """Freezing's statistics (made on first use), or None when this algorithm does not freeze;
        a distributed pipeline carries their Fisher traces from rank to rank."""
        return self._adaptive_freezing(model) if self.freezes else None

    def stage_gradients(
        self, model: nn.Module, batch: TrainBatch, first_layer: int, layer_grads: Sequence[Sequence[torch.Tensor]]
    ) -> None:
        """`batch`'s backward ran into layers `first_layer..` with these gradients (one list per
        layer): all of the model's in a learner, one stage's share in a pipeline. Freezing's
        Fisher traces learn from a step that froze nothing."""
        if not self.freezes or batch.frozen_layers:
            return
        flops = self._adaptive_freezing(model).observe_gradients(first_layer, layer_grads)
        batch.cost = batch.cost + StepCost(flops=flops)

    def details(self) -> dict[str, float]:
        """Numbers for the run's summary (how often it froze)."""
        return {} if self.freezing is None else self.freezing.details()

    @classmethod
    def step_passes(cls, config: AlgorithmConfig, batch_rows: int) -> StepCost:
        """The passes of a nominal step on `batch_rows` rows, one of them new (compute budgets)."""
        return StepCost.train(batch_rows)

    @classmethod
    def first_extra_datum(cls, config: AlgorithmConfig, task: np.ndarray) -> int | None:
        """The stream index of the first datum whose step runs the extra passes, on a stream of
        these task ids (None: none does); every datum by default."""
        return 0 if len(task) else None

    @classmethod
    def stored_state_bytes(
        cls, config: AlgorithmConfig, model: nn.Module, num_classes: int
    ) -> tuple[dict[str, int], int]:
        """What this algorithm will store for `model`: bytes per ledger category that do not
        depend on the replay memory, and bytes per replay slot beyond the sample itself."""
        if (config.freezing or cls.default_freezing) != "adaptive":
            return {}, 0
        return {"freezing": AdaptiveFreezing.bytes_for(require_layered(model, "adaptive freezing").num_layers)}, 0

    def _adaptive_freezing(self, model: nn.Module) -> AdaptiveFreezing:
        if self.freezing is None:
            flops = self.context.layer_flops
            if not flops:
                from executor.profiler.trace import layer_flops

                flops = tuple(float(f) for f in layer_flops(require_layered(model, "adaptive freezing")))
            assert self._freezing_rng is not None
            self.freezing = AdaptiveFreezing(flops, self.config.unfreeze_rate, self._freezing_rng)
            self.context.ledger.set("freezing", self.freezing.nbytes)
        return self.freezing


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

    def state_dict(self) -> dict[str, int]:
        return {"task": self._task, "since": self._since, "count": self.count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._task, self._since, self.count = int(state["task"]), int(state["since"]), int(state["count"])

    @classmethod
    def first_after_start(cls, every: int, task: np.ndarray) -> int | None:
        """The first stream index but 0 at which `due` holds when every datum is admitted with
        one new row (the first reference point LwF takes: at datum 0 no class was seen yet)."""
        consolidation = cls(every)
        for i, t in enumerate(task):
            if consolidation.due(int(t), 1) and i:
                return i
        return None


AlgorithmClass = type[OCLAlgorithm]
ALGORITHMS: Registry[AlgorithmClass] = Registry("OCL algorithm", {"vanilla": OCLAlgorithm})


def register_algorithm(name: str) -> Callable[[AlgorithmClass], AlgorithmClass]:
    """`ALGORITHMS.register` that also gives the class its `name`."""

    def deco(cls: AlgorithmClass) -> AlgorithmClass:
        cls.name = name
        return ALGORITHMS.add(name, cls)

    return deco


def algorithm_class(config: AlgorithmConfig) -> AlgorithmClass:
    """The class `config` names; one line if the name is unknown or `config` gives it a sampler
    it has no replay memory for."""
    algorithm_names()  # loads the built-in algorithms; an unknown name is one line from the registry
    cls = ALGORITHMS[config.name]
    if config.sampler is not None and not cls.replay_memory:
        replaying = ", ".join(name for name in algorithm_names() if ALGORITHMS[name].replay_memory)
        raise FerretError(f"--sampler applies to algorithms with a replay memory ({replaying}), not {config.name}")
    return cls


def twin_passes(config: AlgorithmConfig, rows: int, task: np.ndarray) -> AlgorithmPasses:
    """What the twin charges for `config`'s algorithm beyond each datum's training forward and
    backward, a datum being a micro-batch of `rows` rows (one new) on a stream of these task ids
    (sim/algorithm_passes.py): how many passes, from its `step_passes` less the training step's,
    in passes of the training op on `rows` rows; when, from its `extra_passes_at`; from which
    datum, from its `first_extra_datum`. The one mapping from an algorithm to the twin."""
    cls = algorithm_class(config)
    if cls.extra_passes_at is None:
        return NO_PASSES
    first = cls.first_extra_datum(config, task)
    if first is None:
        return NO_PASSES
    extra = cls.step_passes(config, rows)
    train = StepCost.train(rows)
    forwards, backwards = (extra.forward - train.forward) / rows, (extra.backward - train.backward) / rows
    return AlgorithmPasses.at(cls.extra_passes_at, forwards, backwards, from_sample=first)


def build_algorithm(config: AlgorithmConfig, context: AlgorithmContext) -> OCLAlgorithm:
    return algorithm_class(config)(config.validate(), context)
