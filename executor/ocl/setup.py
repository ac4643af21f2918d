"""`RunSetup`: everything a framework needs to run a stream; the single source of truth of a run."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from executor.data import Stream
from executor.ledger import ByteLedger
from executor.ocl.algorithms import AlgorithmConfig, AlgorithmContext
from executor.ocl.budget import ComputeBudget, MemoryPlan
from executor.ocl.cost import CostModel
from executor.seeding import numpy_rng
from executor.stage.optim import OptimizerConfig
from planner.errors import FerretError
from planner.profile import ModelProfile


@dataclass(frozen=True, eq=False)
class RunSetup:
    """A stream, a model (with its profile, for virtual time), the learner's configuration.

    `eval_every`: evaluate on the seen-class test set every that many arrivals (and always
    after the last one); 0 evaluates only at the end. `progress`: show a progress bar.
    The model is trained in place (moved to `device`): after a run it holds the final weights.
    """

    stream: Stream
    model: nn.Module
    profile: ModelProfile
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    eval_every: int = 100
    seed: int = 0
    device: str = "cpu"
    progress: bool = False
    # The same model profiled at other batch sizes: with them a step's fixed cost is fitted
    # (batching amortises it); without them a step on B rows costs B one-row steps.
    batch_profiles: tuple[ModelProfile, ...] = ()
    # Budgeted OCL (SPEC §10.1): the byte budget's split (the ledger's stored state may never
    # exceed it) and the training FLOPs per stream sample (the `budgeted` framework spends it).
    memory_budget: MemoryPlan | None = None
    compute_budget: ComputeBudget | None = None

    def __post_init__(self) -> None:
        name = getattr(self.model, "name", None)
        if isinstance(name, str) and name != self.profile.model:
            raise FerretError(f"the profile is of model {self.profile.model!r} but the run trains {name!r}")
        layers = getattr(self.model, "num_layers", None)
        if layers is not None and layers != self.profile.num_layers:
            raise FerretError(
                f"profile of {self.profile.model!r} has {self.profile.num_layers} layers "
                f"but the model has {layers}; profile this model (or pass its profile)"
            )
        if self.eval_every < 0:
            raise FerretError(f"--eval-every must be ≥ 0, got {self.eval_every}")
        if len(self.stream) == 0:
            raise FerretError("the stream is empty")
        self.profile.validate()
        for other in self.batch_profiles:
            other.validate()
            if other.model != self.profile.model or other.num_layers != self.profile.num_layers:
                raise FerretError(
                    f"batch profile of {other.model!r} ({other.num_layers} layers) does not match the profile of "
                    f"{self.profile.model!r} ({self.profile.num_layers} layers)"
                )
        self.optimizer.validate()
        self.algorithm.validate()

    @property
    def cost_model(self) -> CostModel:
        return CostModel.from_profiles((self.profile, *self.batch_profiles))

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def num_classes(self) -> int:
        return self.stream.dataset.num_classes

    def algorithm_context(self, ledger: ByteLedger) -> AlgorithmContext:
        """What a pipeline's algorithm learns about the run (a `Learner` makes the same): its
        own random stream, and the profile's layer FLOPs (freezing decides on them)."""
        dataset = self.stream.dataset
        return AlgorithmContext(
            dataset.num_classes,
            dataset.stored_bytes_per_sample,
            ledger,
            numpy_rng(self.seed, "algorithm", self.algorithm.name),
            self.optimizer.lr,
            self.cost_model.layer_forward_flops,
        )
