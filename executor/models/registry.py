"""Registry of model builders: `build_model("mnistnet", (1, 28, 28), 10)`.

A builder takes `(input_shape, num_classes, **options)` and returns a `LayeredModel`; it must
adapt to any input shape its family supports (8×8 digits as well as 28×28 or 32×32 images).
A model for a large input or many classes is first built on torch's meta device (no memory)
and refused when its weights and one datum's activations would pass `--max-memory`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from executor.models.base import LayeredModel
from planner.errors import FerretError
from planner.limits import check_work
from planner.registry import Registry

ModelBuilder = Callable[..., LayeredModel]
# Below these, no built-in family's weights or activations come near the memory limit, so the
# meta-device estimate (up to a second for deep models) is skipped.
_SMALL_INPUT, _FEW_CLASSES = 2**18, 2**12
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
    if math.prod(input_shape) > _SMALL_INPUT or num_classes > _FEW_CLASSES:
        _check_size(name, builder, tuple(input_shape), num_classes, options)
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


def _check_size(
    name: str, builder: ModelBuilder, shape: tuple[int, ...], num_classes: int, options: dict[str, Any]
) -> None:
    """Refuse a model whose weights plus one datum's activations would pass the memory limit,
    measured on the meta device (shapes only, nothing allocated)."""
    from executor.profiler.trace import trace_layers

    try:
        with torch.device("meta"):
            model = builder(shape, num_classes, **options)
    except ValueError as exc:
        raise FerretError(str(exc)) from None
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    activations = sum(cost.out_bytes for cost in trace_layers(model, 1))
    check_work("max_memory_bytes", weights + activations, f"model {name} for input {shape} and {num_classes} classes")


def _load_builtin_models() -> None:
    # Imported for their registration side effect; lazily, so importing the registry is cheap.
    import executor.models.zoo  # noqa: F401
