"""Stale-gradient compensators (SPEC §5), a registry keyed by name.

`none`, `step-aware`, `gap-aware`, `fisher`, `iter-fisher`; build one per stage with
`build_compensator(CompensationConfig(name=...), numel)`.
"""

from executor.compensation.base import CompensationConfig, Compensator, fisher_approx
from executor.compensation.registry import COMPENSATORS, build_compensator, register_compensator

__all__ = [
    "COMPENSATORS",
    "CompensationConfig",
    "Compensator",
    "build_compensator",
    "fisher_approx",
    "register_compensator",
]
