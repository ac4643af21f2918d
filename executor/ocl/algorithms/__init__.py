"""OCL algorithms that plug into any framework (SPEC §8): vanilla, er, mir, lwf, mas."""

from executor.ocl.algorithms.base import (
    ALGORITHMS,
    AlgorithmConfig,
    AlgorithmContext,
    OCLAlgorithm,
    build_algorithm,
    register_algorithm,
)

__all__ = [
    "ALGORITHMS",
    "AlgorithmConfig",
    "AlgorithmContext",
    "OCLAlgorithm",
    "build_algorithm",
    "register_algorithm",
]
