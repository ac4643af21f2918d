"""Stale-gradient compensators (SPEC §5), a registry keyed by name.

`none`, `step-aware`, `gap-aware`, `fisher`, `iter-fisher` and `hvp` (exact
Hessian-vector product), `adam-fisher` (Adam's Fisher diagonal) (SPEC §5); build one per stage with
`build_compensator(CompensationConfig(name=...), numel)`.
"""

from executor.compensation.base import CompensationConfig, Compensator, StageProbe, fisher_approx
from executor.compensation.efficacy import (
    EFFICACY_EVERY,
    EfficacyLog,
    EfficacySample,
    compensation_efficacy,
    efficacy_sample,
)
from executor.compensation.registry import COMPENSATORS, build_compensator, compensation_buffers, register_compensator

__all__ = [
    "COMPENSATORS",
    "EFFICACY_EVERY",
    "CompensationConfig",
    "Compensator",
    "EfficacyLog",
    "EfficacySample",
    "StageProbe",
    "build_compensator",
    "compensation_buffers",
    "compensation_efficacy",
    "efficacy_sample",
    "fisher_approx",
    "register_compensator",
]
