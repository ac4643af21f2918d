"""The math of one pipeline stage (SPEC §3, §5): `StageRuntime` and its parts.

See docs/executor.md for the op-by-op contract the executors drive.
"""

from executor.stage.optim import OPTIMIZER, OptimizerConfig, StageOptimizer
from executor.stage.results import BackwardResult, ForwardResult, UpdateResult, output_gradient
from executor.stage.rules import WorkerRule, stage_rules
from executor.stage.runtime import (
    ACCUMULATION,
    ACTIVATIONS,
    BUFFERS,
    COMPENSATOR,
    GRADIENTS,
    OpOrderError,
    StageRuntime,
)
from executor.stage.versions import WEIGHTS, Version, VersionStore

__all__ = [
    "ACCUMULATION",
    "ACTIVATIONS",
    "BUFFERS",
    "COMPENSATOR",
    "GRADIENTS",
    "OPTIMIZER",
    "WEIGHTS",
    "BackwardResult",
    "ForwardResult",
    "OpOrderError",
    "OptimizerConfig",
    "StageOptimizer",
    "StageRuntime",
    "UpdateResult",
    "Version",
    "VersionStore",
    "WorkerRule",
    "output_gradient",
    "stage_rules",
]
