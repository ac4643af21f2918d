"""Frameworks: who trains on what, and when. The registry any framework joins.

A framework turns a `RunSetup` into a `RunResult` (`framework.run(setup)`). The sequential
stream baselines of SPEC §7 share one virtual-time loop (`executor.ocl.loop`) and differ only
in a `SchedulingPolicy`: which arrivals it keeps, and what it trains on when the learner is
free. Pipeline frameworks (Ferret plans run by an executor) register here too and return the
same `RunResult`, so `ferret run` writes the same outputs for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from executor.ledger import ByteLedger
from executor.ocl.cost import ZERO_COST, StepCost
from planner.config_field import check_bounds, config_field
from planner.errors import FerretError
from planner.registry import Registry

if TYPE_CHECKING:
    from executor.ocl.frameworks.pipeline import PipelineOptions
    from executor.ocl.result import RunResult
    from executor.ocl.setup import RunSetup


@dataclass(frozen=True)
class FrameworkOptions:
    """`batch_size` N and `window` B of the B-Skip family and Camel; `pipeline` for the pipeline
    framework (a plan and how to run it); `extra` for other registered frameworks."""

    batch_size: int = config_field(10, help="N: data trained per step (B-Skip, Camel)", unit="int", ge=1)
    window: int = config_field(50, help="B: latest untrained data kept (B-Skip, Camel)", unit="int", ge=1)
    extra: Mapping[str, Any] = config_field(
        default_factory=dict,
        help="option of another registered framework, repeatable (the pipeline's are --plan and its flags)",
        unit="key-value",
        flag="framework-option",
    )
    pipeline: PipelineOptions | None = config_field(
        None, help="the pipeline framework's options", via="--plan and the pipeline flags"
    )

    def validate(self) -> FrameworkOptions:
        check_bounds(self, "framework")
        if self.window < self.batch_size:
            raise FerretError(f"--window ({self.window}) must be at least --batch-size ({self.batch_size})")
        return self


class Framework(Protocol):
    """A framework that can run under a memory budget also has `max_held(setup) -> int` (the
    most stream data it holds at once) and `replay_memories: int` (memories of its own, Camel's)."""

    name: str

    def run(self, setup: RunSetup) -> RunResult: ...


@dataclass(frozen=True)
class Selection:
    """What one step trains on: stream positions (the new rows), optional per-row weights,
    rows the framework adds (e.g. Camel's representative samples), and the framework's own
    extra work (e.g. Camel's feature forwards)."""

    positions: np.ndarray
    weight: np.ndarray | None = None
    extra: tuple[torch.Tensor, torch.Tensor] | None = None
    cost: StepCost = ZERO_COST


class StreamView(Protocol):
    """What a policy may look at: the data of arrived positions and the current model's features."""

    def inputs(self, positions: np.ndarray) -> torch.Tensor: ...

    def targets(self, positions: np.ndarray) -> torch.Tensor: ...

    def features(self, positions: np.ndarray) -> torch.Tensor: ...


class SchedulingPolicy(Protocol):
    """A sequential framework's choice of what the learner trains on; the virtual-time loop calls it.

    `on_arrival` for each datum, `select` when the learner is free (None: wait), `after_step` once a
    step is applied; `held` is the number of stream data it keeps (the ledger's "window").
    """

    def on_arrival(self, position: int, busy: bool) -> None:
        """Datum `position` arrived; `busy` says whether the learner was in a step then."""

    def select(self, now: float, view: StreamView) -> Selection | None:
        """The learner is free at `now`: what to train on, or `None` to wait for an arrival."""

    def after_step(self, selection: Selection, view: StreamView) -> None:
        """The step on `selection` was applied."""

    @property
    def held(self) -> int:
        """How many stream data the policy holds (charged as the "window" in the ledger)."""


@dataclass(frozen=True, eq=False)
class PolicyContext:
    """What a policy is built with: the run, the learner's ledger, its own random stream."""

    setup: RunSetup
    ledger: ByteLedger
    rng: np.random.Generator


PolicyFactory = Callable[[PolicyContext], SchedulingPolicy]


class SequentialFramework:
    """A stream baseline of SPEC §7: the shared virtual-time loop driven by one policy."""

    def __init__(
        self,
        name: str,
        policy_factory: PolicyFactory,
        options: FrameworkOptions,
        held: int = 1,
        replay_memories: int = 0,
    ) -> None:
        reject_extra_options(name, options)
        self.name = name
        self.policy_factory = policy_factory
        self.held = held
        self.replay_memories = replay_memories

    def max_held(self, setup: RunSetup) -> int:
        """The most stream data the policy holds at once (its window)."""
        return self.held

    def run(self, setup: RunSetup) -> RunResult:
        from executor.ocl.loop import run_sequential

        return run_sequential(setup, self.policy_factory, self.name)


def reject_extra_options(name: str, options: FrameworkOptions) -> None:
    """The built-in frameworks take only N and B; anything else is a user mistake, not ignored."""
    if options.extra:
        raise FerretError(f"framework {name!r} takes no --framework-option (got {', '.join(sorted(options.extra))})")
    if options.pipeline is not None:
        raise FerretError(f"framework {name!r} runs no plan (a plan runs in framework 'pipeline')")


FrameworkFactory = Callable[[FrameworkOptions], Framework]
FRAMEWORKS: Registry[FrameworkFactory] = Registry("framework")
register_framework = FRAMEWORKS.register


def framework_names() -> list[str]:
    import executor.ocl.frameworks.catalog  # noqa: F401  (registers the built-in frameworks)

    return sorted(FRAMEWORKS)


def build_framework(name: str, options: FrameworkOptions | None = None) -> Framework:
    framework_names()  # loads the built-in frameworks; an unknown name is one line from the registry
    return FRAMEWORKS[name]((options or FrameworkOptions()).validate())
