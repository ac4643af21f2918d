"""Registry of compensators keyed by name: `build_compensator(config, numel, dtype, device)`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from executor.compensation.base import CompensationConfig, Compensator
from planner.registry import Registry

CompensatorFactory = Callable[[CompensationConfig, int, torch.dtype, torch.device], Compensator]
COMPENSATORS: Registry[CompensatorFactory] = Registry("compensation")
register_compensator = COMPENSATORS.register


def build_compensator(
    config: CompensationConfig, numel: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Compensator:
    """A fresh compensator for one stage of `numel` parameters (state is per stage)."""
    config.validate()
    return COMPENSATORS[config.name](config, numel, dtype, device or torch.device("cpu"))


def compensation_buffers(config: CompensationConfig) -> int:
    """How many stage-weight-sized buffers `config`'s compensator keeps per stage (SimConfig's
    `compensation_buffers`, the twin's memory model of a run)."""
    return build_compensator(config, 1).weight_buffers


def _load_builtin_compensators() -> None:
    # Imported for their registration side effect.
    from executor.compensation import (  # noqa: F401
        adam_fisher,
        fisher,
        gap_aware,
        hvp,
        iter_fisher,
        none,
        step_aware,
    )


_load_builtin_compensators()
