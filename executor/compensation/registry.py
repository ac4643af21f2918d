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


def _load_builtin_compensators() -> None:
    # Imported for their registration side effect.
    from executor.compensation import fisher, gap_aware, iter_fisher, none, step_aware  # noqa: F401


_load_builtin_compensators()
