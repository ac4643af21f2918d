"""`synthetic`: a learnable generated data set of any size, with optional concept drift.

Each class has a prototype (images: a smooth random pattern, a coarse Gaussian grid upsampled;
features: a Gaussian vector, unit variance per element); a sample is its class prototype plus
Gaussian noise of std `noise`. Two independent sets of prototypes, concepts A and B, give the
drift, as a function of a training row's position `τ = i / train_size` in the stored order:
- `none`: A throughout;    `abrupt`: A before τ = 1/2, B after;
- `gradual`: `(1-τ)·A + τ·B`;    `recurring`: A and B alternate over `periods` equal segments.
The order is the time axis: play it with the `sequential` stream to see the drift (an iid
stream shuffles it away). The test set is drawn from the concept in force at the end of the
stream. Labels are uniform; everything is fixed by `seed`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from executor.data.base import Dataset
from executor.data.registry import register_dataset
from planner.errors import FerretError
from planner.limits import check_work

DRIFTS = ("none", "gradual", "abrupt", "recurring")


def parse_shape(shape: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    try:
        dims = tuple(int(s) for s in (shape.split(",") if isinstance(shape, str) else shape))
    except ValueError:
        raise FerretError(f"synthetic shape must be comma-separated integers, got {shape!r}") from None
    if not dims or min(dims) < 1 or len(dims) > 3:
        raise FerretError(f"synthetic shape must be 1 to 3 positive sizes (features or C,H,W), got {shape!r}")
    return dims


def prototypes(num_classes: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if len(shape) == 3:
        channels, height, width = shape
        coarse = (max(1, math.ceil(height / 4)), max(1, math.ceil(width / 4)))
        grid = rng.standard_normal((num_classes, channels, *coarse))
        zoom = (1, 1, height / coarse[0], width / coarse[1])
        protos = ndimage.zoom(grid, zoom, order=1)[:, :, :height, :width]
        protos = (protos - protos.mean(axis=(1, 2, 3), keepdims=True)) / protos.std(axis=(1, 2, 3), keepdims=True)
        return protos
    return rng.standard_normal((num_classes, *shape))


def concept_weight(tau: np.ndarray, drift: str, periods: int) -> np.ndarray:
    """Weight of concept B at stream positions `tau` ∈ [0, 1] (A has `1 - weight`)."""
    if drift == "none":
        return np.zeros_like(tau)
    if drift == "abrupt":
        return (tau >= 0.5).astype(np.float64)
    if drift == "gradual":
        return tau
    return (np.minimum(np.floor(tau * periods), periods - 1) % 2).astype(np.float64)


@register_dataset("synthetic")
def load_synthetic(
    root: object = None,
    seed: int = 0,
    num_classes: int = 10,
    shape: str | tuple[int, ...] = (1, 8, 8),
    train_size: int = 5000,
    test_size: int = 1000,
    noise: float = 1.0,
    drift: str = "none",
    periods: int = 4,
) -> Dataset:
    dims = parse_shape(shape)
    num_classes, train_size, test_size, periods = int(num_classes), int(train_size), int(test_size), int(periods)
    if num_classes < 2 or train_size < 1 or test_size < 1 or periods < 1:
        raise FerretError("synthetic needs num_classes ≥ 2, train_size ≥ 1, test_size ≥ 1 and periods ≥ 1")
    if drift not in DRIFTS:
        raise FerretError(f"synthetic drift must be one of {', '.join(DRIFTS)}, got {drift!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise FerretError(f"synthetic noise must be a finite std ≥ 0, got {noise}")
    # Drawing works in float64 with a few temporaries of the whole split: ~24 bytes per value.
    values = (train_size + test_size + 2 * num_classes) * math.prod(dims)
    check_work("max_memory_bytes", 24 * values, f"a synthetic data set of {train_size + test_size} rows of {dims}")
    rng = np.random.default_rng(seed)
    concept_a, concept_b = prototypes(num_classes, dims, rng), prototypes(num_classes, dims, rng)

    def draw(n: int, weight_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(num_classes, size=n)
        w = weight_b.reshape(-1, *([1] * len(dims)))
        means = (1 - w) * concept_a[y] + w * concept_b[y]
        x = means + noise * rng.standard_normal((n, *dims))
        return x.astype(np.float32), y.astype(np.int64)

    weight_train = concept_weight(np.arange(train_size) / train_size, drift, periods)
    final = concept_weight(np.array([(train_size - 1) / train_size]), drift, periods)
    x_train, y_train = draw(train_size, weight_train)
    x_test, y_test = draw(test_size, np.full(test_size, final[0]))
    return Dataset(f"synthetic-{drift}", x_train, y_train, x_test, y_test, num_classes)
