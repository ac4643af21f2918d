"""Registry of model builders: `build_model("mnistnet", (1, 28, 28), 10)`.

A builder takes `(input_shape, num_classes, **options)` and returns a `LayeredModel`; it must
adapt to any input shape its family supports (8×8 digits as well as 28×28 or 32×32 images).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from executor.models.base import LayeredModel
from planner.errors import FerretError
from planner.registry import Registry

ModelBuilder = Callable[..., LayeredModel]
MODELS: Registry[ModelBuilder] = Registry("model")
# The input each model is usually profiled at when the user gives none (CLI default).
DEFAULT_INPUT_SHAPES: Registry[tuple[int, ...]] = Registry("default input shape")


def register_model(
    name: str, default_input_shape: tuple[int, ...] | None = None
) -> Callable[[ModelBuilder], ModelBuilder]:
    """`MODELS.register` that also records the model's default input shape."""
    if default_input_shape is not None:
        DEFAULT_INPUT_SHAPES.add(name, tuple(default_input_shape))
    return MODELS.register(name)


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, seed: int | None = None, **options: Any
) -> LayeredModel:
    """Build a registered model; with `seed`, its initial weights are deterministic.

    `weights=PATH` loads a local state dict after building (`executor.models.weights`); for
    models with a `norm` option it then defaults to `frozen-batch`, the norm that keeps
    pretrained BatchNorm statistics usable when training on one datum at a time.
    """
    _load_builtin_models()
    builder = MODELS[name]
    if num_classes < 2:
        raise FerretError(f"a classifier needs at least 2 classes, got {num_classes}")
    weights: str | Path | None = options.pop("weights", None)
    accepted = list(inspect.signature(builder).parameters)[2:]  # after (input_shape, num_classes)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join([*accepted, "weights"])
        raise FerretError(f"model {name!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}")
    if weights is not None and "norm" in accepted:
        options.setdefault("norm", "frozen-batch")
    try:
        if seed is None:
            model = builder(tuple(input_shape), num_classes, **options)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = builder(tuple(input_shape), num_classes, **options)
    except ValueError as exc:  # a builder's complaint about the shape or an option
        raise FerretError(str(exc)) from None
    if weights is not None:
        from executor.models.weights import load_weights

        load_weights(model, weights)
    return model


def _load_builtin_models() -> None:
    # Imported for their registration side effect; lazily, so importing the registry is cheap.
    import executor.models.zoo  # noqa: F401
