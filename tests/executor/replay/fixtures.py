"""Small, exact fixtures for the replay tests: a tiny data set, streams, profiles and plans."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from executor.data import Dataset, Stream
from executor.models import build_model
from executor.models.base import LayeredModel
from executor.ocl.algorithms import AlgorithmConfig
from executor.ocl.learner import OptimizerConfig
from executor.ocl.setup import RunSetup
from planner.plan import Plan, WorkerConfig, default_placement
from planner.profile import LayerProfile, ModelProfile


def blobs(n_train: int = 60, n_test: int = 20, classes: int = 3, features: int = 6, seed: int = 0) -> Dataset:
    """Separable Gaussian blobs: class c centred at 2·e_c."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n, dtype=np.int64) % classes)
        x = rng.normal(0.0, 0.5, size=(n, features)).astype(np.float32)
        x[np.arange(n), y] += 2.0
        return x, y

    x_tr, y_tr = split(n_train)
    x_te, y_te = split(n_test)
    return Dataset("blobs", x_tr, y_tr, x_te, y_te, num_classes=classes, stored_bytes_per_sample=features)


def mlp(dataset: Dataset, hidden: tuple[int, ...] = (8, 8), seed: int = 0) -> LayeredModel:
    """`len(hidden) + 1` planner layers (Linear→ReLU blocks and a linear classifier)."""
    return build_model("mlp", dataset.input_shape, dataset.num_classes, seed=seed, hidden=hidden)


def profile(model: LayeredModel, t_fwd: float = 1.0, t_bwd: float = 2.0) -> ModelProfile:
    """Every layer costs `t_fwd`/`t_bwd` seconds and 10 FLOPs per sample; bytes are the model's
    own (parameters, and each layer's output for one datum), as the profiler would measure."""
    x = torch.zeros(1, *model.input_shape)
    layers = []
    with torch.no_grad():
        for name, layer in zip(model.layer_names, model.layers, strict=True):
            x = layer(x)
            params = sum(p.numel() * p.element_size() for p in layer.parameters())
            layers.append(LayerProfile(name, t_fwd, t_bwd, params, x.numel() * x.element_size(), 10))
    return ModelProfile(model.name, tuple(layers), source="synthetic")


def stream(dataset: Dataset, n: int, interval_s: float, task: Any = None) -> Stream:
    """Training rows 0..n-1 (cycling) arriving every `interval_s`."""
    order = np.arange(n, dtype=np.int64) % len(dataset.y_train)
    tasks = np.zeros(n, dtype=np.int64) if task is None else np.asarray(task, dtype=np.int64)
    return Stream("fixed", dataset, order, np.arange(n, dtype=np.float64) * interval_s, tasks)


def setup(
    n: int = 30,
    interval_s: float = 10.0,
    hidden: tuple[int, ...] = (8, 8),
    seed: int = 0,
    algorithm: str = "vanilla",
    optimizer: OptimizerConfig | None = None,
    eval_every: int = 10,
    **algorithm_options: Any,
) -> RunSetup:
    dataset = blobs()
    model = mlp(dataset, hidden, seed=seed)
    return RunSetup(
        stream(dataset, n, interval_s),
        model,
        profile(model),
        optimizer=optimizer or OptimizerConfig(),
        algorithm=AlgorithmConfig(name=algorithm, **algorithm_options),
        eval_every=eval_every,
        seed=seed,
    )


def plan(
    partition: tuple[int, ...],
    workers: int = 1,
    interval_s: float = 10.0,
    strategy: str = "ferret",
    accumulation: tuple[int, ...] | None = None,
    omission: tuple[int, ...] | None = None,
    recompute: bool = False,
    minibatch: int = 1,
    backward_weights: str = "stashed",
) -> Plan:
    P = len(partition) - 1
    worker_configs = tuple(
        WorkerConfig(n, recompute, accumulation or (1,) * P, omission or (0,) * P, backward_weights)
        for n in range(workers)
    )
    return Plan(
        strategy,
        partition,
        worker_configs,
        default_placement(workers, P),
        interval_s,
        minibatch=minibatch,
    ).validate(partition[-1])
