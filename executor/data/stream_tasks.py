"""Task-structured orders: sequential, class-incremental (Split-*) and Gaussian-blurry streams.

Class-incremental: the classes present in the training set are split into `tasks` disjoint
groups (sorted by label, or in a seeded random order); the stream shows task 0's data, then
task 1's, … Each task gets a share of the stream proportional to its number of training
samples; within a task the data come in shuffled passes over the task's pool.

Blurry: the same data, but each datum's position is drawn around its task's centre,
`key = task + 1/2 + sigma · z` with `z ~ N(0, 1)`, and the stream is sorted by key. `sigma` is
in units of one task's length: at 0 the stream is exactly class-incremental, and as it grows
more data leave their task's segment (the Gaussian task boundaries of aL-SAR's streams).
"""

from __future__ import annotations

import numpy as np

from executor.data.base import Dataset
from executor.data.stream import register_stream
from planner.errors import FerretError


def shuffled_passes(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` items of `pool` in shuffled passes (each item once per pass)."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    passes = -(-n // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(passes)])[:n]


def split_counts(n: int, weights: np.ndarray) -> np.ndarray:
    """Split `n` into integer parts proportional to `weights` (largest remainder)."""
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    short = n - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return counts


def class_groups(labels: np.ndarray, tasks: int, rng: np.random.Generator, class_order: str) -> list[np.ndarray]:
    classes = np.unique(labels)
    if not 1 <= tasks <= len(classes):
        raise FerretError(f"tasks must be between 1 and the {len(classes)} classes present, got {tasks}")
    if class_order == "random":
        classes = rng.permutation(classes)
    elif class_order != "sorted":
        raise FerretError(f"class_order must be 'sorted' or 'random', got {class_order!r}")
    return list(np.array_split(classes, tasks))


def class_incremental(
    dataset: Dataset, n: int, rng: np.random.Generator, tasks: int, class_order: str
) -> tuple[np.ndarray, np.ndarray]:
    labels = dataset.y_train
    groups = class_groups(labels, tasks, rng, class_order)
    task_of_class = np.full(dataset.num_classes, -1, dtype=np.int64)
    for t, group in enumerate(groups):
        task_of_class[group] = t
    task_of_sample = task_of_class[labels]
    pools = [np.flatnonzero(task_of_sample == t) for t in range(tasks)]
    counts = split_counts(n, np.array([len(p) for p in pools], dtype=np.float64))
    order = np.concatenate([shuffled_passes(pool, int(c), rng) for pool, c in zip(pools, counts, strict=True)])
    return order, task_of_sample[order]


@register_stream("class-incremental")
def class_incremental_order(
    dataset: Dataset, n: int, rng: np.random.Generator, tasks: int = 5, class_order: str = "sorted"
) -> tuple[np.ndarray, np.ndarray]:
    """Split-* streams: `tasks` disjoint class groups, one after the other."""
    return class_incremental(dataset, n, rng, tasks, class_order)


@register_stream("blurry")
def blurry_order(
    dataset: Dataset,
    n: int,
    rng: np.random.Generator,
    tasks: int = 5,
    sigma: float = 0.25,
    class_order: str = "sorted",
) -> tuple[np.ndarray, np.ndarray]:
    """Class-incremental with Gaussian task boundaries of width `sigma` (in task lengths)."""
    if not (np.isfinite(sigma) and sigma >= 0):
        raise FerretError(f"sigma must be a finite number ≥ 0, got {sigma}")
    order, task = class_incremental(dataset, n, rng, tasks, class_order)
    key = task + 0.5 + sigma * rng.standard_normal(len(order))
    perm = np.argsort(key, kind="stable")  # stable: sigma = 0 keeps the class-incremental order
    return order[perm], task[perm]


@register_stream("sequential")
def sequential_order(dataset: Dataset, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The training set in its stored order (repeated if `n` exceeds it).

    For data sets whose order is their time axis: the synthetic generator's drift, or a
    user's file already in arrival order.
    """
    order = np.arange(n, dtype=np.int64) % len(dataset)
    return order, np.zeros(n, dtype=np.int64)
