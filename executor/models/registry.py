"""Registry of model builders: `build_model("mnistnet", (1, 28, 28), 10)`.

A builder takes `(input_shape, num_classes, **options)` and returns a `LayeredModel`; it must
adapt to any input shape its family supports (8×8 digits as well as 28×28 or 32×32 images).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from executor.models.base import LayeredModel
from planner.errors import FerretError

ModelBuilder = Callable[..., LayeredModel]
MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    def deco(builder: ModelBuilder) -> ModelBuilder:
        if name in MODELS:
            raise RuntimeError(f"model {name!r} registered twice")
        MODELS[name] = builder
        return builder

    return deco


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, seed: int | None = None, **options: Any
) -> LayeredModel:
    """Build a registered model; with `seed`, its initial weights are deterministic."""
    _load_builtin_models()
    if name not in MODELS:
        raise FerretError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    if num_classes < 2:
        raise FerretError(f"a classifier needs at least 2 classes, got {num_classes}")
    if seed is None:
        return MODELS[name](tuple(input_shape), num_classes, **options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[name](tuple(input_shape), num_classes, **options)


def _load_builtin_models() -> None:
    # Imported for their registration side effect; lazily, so importing the registry is cheap.
    import executor.models.zoo  # noqa: F401
