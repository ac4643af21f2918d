"""Domain-incremental streams: the same classes every task, a shifted input distribution per task.

Task `t` of `k` sees an iid sample of the training set (shuffled passes, `n/k` data each)
transformed by that task's shift:
- `rotate` (images): rotation by `t · max_angle/(k-1)` degrees (bilinear, zero fill);
- `permute`: a fixed seeded permutation of the input features (task 0 is the identity);
- `noise`: additive Gaussian noise of std `t · max_noise/(k-1)` (task 0 is clean).
The stream carries its own data set: the transformed training data in stream order, and the
test set once per domain (`Stream.test_task` says which), so test accuracy can be taken over
the domains seen so far.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from executor.data.base import Dataset
from executor.data.stream import StreamParts, register_stream
from executor.data.stream_tasks import shuffled_passes, split_counts
from planner.errors import FerretError

SHIFTS = ("rotate", "permute", "noise")


Shift = Callable[[np.ndarray], np.ndarray]


def _shift_fn(
    shift: str,
    t: int,
    tasks: int,
    input_shape: tuple[int, ...],
    rng: np.random.Generator,
    max_angle: float,
    max_noise: float,
) -> Shift:
    frac = t / (tasks - 1) if tasks > 1 else 0.0
    if shift == "rotate":
        angle = frac * max_angle
        return lambda x: ndimage.rotate(x, angle, axes=(-1, -2), reshape=False, order=1, mode="constant")
    if shift == "permute":
        size = int(np.prod(input_shape))
        perm = np.arange(size) if t == 0 else rng.permutation(size)
        return lambda x: x.reshape(len(x), -1)[:, perm].reshape(x.shape)
    std = frac * max_noise
    noise_rng = np.random.default_rng(rng.integers(2**63))
    return lambda x: x + std * noise_rng.standard_normal(x.shape).astype(np.float32)


@register_stream("domain-incremental")
def domain_incremental(
    dataset: Dataset,
    n: int,
    rng: np.random.Generator,
    tasks: int = 5,
    shift: str = "rotate",
    max_angle: float = 90.0,
    max_noise: float = 0.5,
) -> StreamParts:
    if tasks < 1:
        raise FerretError(f"tasks must be ≥ 1, got {tasks}")
    if shift not in SHIFTS:
        raise FerretError(f"shift must be one of {', '.join(SHIFTS)}, got {shift!r}")
    if shift == "rotate" and len(dataset.input_shape) != 3:
        raise FerretError(f"shift 'rotate' needs (C, H, W) images; {dataset.name} has shape {dataset.input_shape}")
    counts = split_counts(n, np.ones(tasks))
    all_rows = np.arange(len(dataset))
    x_train, x_test, train_rows = [], [], []
    for t in range(tasks):
        fn = _shift_fn(shift, t, tasks, dataset.input_shape, rng, max_angle, max_noise)
        rows = shuffled_passes(all_rows, int(counts[t]), rng)
        train_rows.append(rows)
        x_train.append(fn(dataset.x_train[rows]).astype(np.float32, copy=False))
        x_test.append(fn(dataset.x_test).astype(np.float32, copy=False))
    rows = np.concatenate(train_rows)
    shifted = Dataset(
        f"{dataset.name}/{shift}",
        np.concatenate(x_train),
        dataset.y_train[rows],
        np.concatenate(x_test),
        np.tile(dataset.y_test, tasks),
        dataset.num_classes,
        dataset.stored_bytes_per_sample,
    )
    task = np.repeat(np.arange(tasks, dtype=np.int64), counts)
    test_task = np.repeat(np.arange(tasks, dtype=np.int64), len(dataset.y_test))
    return StreamParts(np.arange(n, dtype=np.int64), task, shifted, test_task)
