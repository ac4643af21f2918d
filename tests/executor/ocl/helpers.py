"""Small, exact fixtures for the OCL tests: a tiny data set, hand-made streams and profiles."""

from __future__ import annotations

from typing import Any

import numpy as np

from executor.data import Dataset, Stream
from executor.models import build_model
from executor.models.base import LayeredModel
from executor.ocl.setup import RunSetup
from planner.profile import LayerProfile, ModelProfile


def tiny_dataset(n_train: int = 30, n_test: int = 12, classes: int = 3, features: int = 4, seed: int = 0) -> Dataset:
    """Separable Gaussian blobs: class c centred at 2·e_c (features ≥ classes)."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n, dtype=np.int64) % classes
        x = rng.normal(0.0, 0.3, size=(n, features)).astype(np.float32)
        x[np.arange(n), y] += 2.0
        return x, y

    x_tr, y_tr = split(n_train)
    x_te, y_te = split(n_test)
    return Dataset("tiny", x_tr, y_tr, x_te, y_te, num_classes=classes, stored_bytes_per_sample=features)


def hand_stream(dataset: Dataset, arrival_s: Any, task: Any = None, order: Any = None) -> Stream:
    """Datum i is training row `order[i]` (default i), arriving at `arrival_s[i]`."""
    n = len(arrival_s)
    tasks = np.zeros(n, dtype=np.int64) if task is None else np.asarray(task, dtype=np.int64)
    rows = np.arange(n, dtype=np.int64) if order is None else np.asarray(order, dtype=np.int64)
    return Stream("hand", dataset, rows, np.asarray(arrival_s, dtype=np.float64), tasks)


def linear_model(dataset: Dataset, seed: int = 0) -> LayeredModel:
    """One planner layer: a linear classifier."""
    return build_model("mlp", dataset.input_shape, dataset.num_classes, seed=seed, hidden=())


def flat_profile(model: LayeredModel, t_fwd: float, t_bwd: float, flops: int = 0) -> ModelProfile:
    """Every layer costs `t_fwd`/`t_bwd` per sample (so a sample step takes L·(t_fwd + t_bwd))."""
    layers = tuple(LayerProfile(name, t_fwd, t_bwd, 0, 0, flops) for name in model.layer_names)
    return ModelProfile(model.name, layers, source="synthetic")


def hand_setup(arrival_s: Any, t_fwd: float, t_bwd: float, order: Any = None, **kwargs: Any) -> RunSetup:
    """A one-layer linear model on the tiny data set; a step on one sample takes `t_fwd + t_bwd`.
    Training row `i` has label `i mod 3`."""
    rows = len(arrival_s) if order is None else int(np.max(order)) + 1
    dataset = tiny_dataset(n_train=max(rows, 3))
    model = linear_model(dataset)
    stream = hand_stream(dataset, arrival_s, order=order)
    return RunSetup(stream, model, flat_profile(model, t_fwd, t_bwd), **kwargs)


def assert_same_state(a: Any, b: Any, path: str = "state") -> None:
    """`a` and `b` (nested dicts/lists of arrays, tensors, generator states, numbers) are equal
    bit for bit, dtypes and shapes included; the message names the first place they differ."""
    import torch

    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            assert_same_state(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"{path}: arrays differ"
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), f"{path}: tensors differ"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"
