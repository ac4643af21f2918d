"""`Stream`: the order in which training data arrive, and when (test-then-train).

A stream builder takes `(dataset, arrival_times, seed, **options)` and returns the order of
the training set; arrival times come from `sim.arrivals`. The registry `STREAMS` holds the
families (iid here; class-incremental, blurry and domain-incremental alongside).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from executor.data.base import Dataset
from executor.data.options import checked_options
from planner.errors import FerretError, ValidationError
from planner.registry import Registry
from sim.arrivals import ArrivalProcess


@dataclass(frozen=True, eq=False)
class Stream:
    """Datum `i` of the stream is `dataset.x_train[order[i]]`, arriving at `arrival_s[i]`.

    `task[i]` is the task (experience) the datum belongs to; 0 everywhere for iid streams.
    `test_task[j]`, when set, is the task (domain) of test row `j`: streams that transform
    the inputs per task (domain-incremental) test on every domain, labelled here.
    """

    name: str
    dataset: Dataset
    order: np.ndarray
    arrival_s: np.ndarray
    task: np.ndarray
    test_task: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.test_task is not None and len(self.test_task) != len(self.dataset.y_test):
            raise ValidationError("stream test_task must label every test row")
        n = len(self.order)
        if len(self.arrival_s) != n or len(self.task) != n:
            raise ValidationError("stream order, arrival times and task ids must have the same length")
        if n and (self.order.min() < 0 or self.order.max() >= len(self.dataset)):
            raise ValidationError("stream order indexes outside the training set")
        if np.any(np.diff(self.arrival_s) < 0):
            raise ValidationError("stream arrival times must be non-decreasing")

    def __len__(self) -> int:
        return len(self.order)

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.y_train[self.order]

    @property
    def num_tasks(self) -> int:
        return int(self.task.max()) + 1 if len(self.task) else 0


@dataclass(frozen=True, eq=False)
class StreamParts:
    """What a builder returns when it also transforms the data (domain-incremental):
    `order`/`task` index `dataset`, which replaces the input data set in the stream."""

    order: np.ndarray
    task: np.ndarray
    dataset: Dataset
    test_task: np.ndarray | None = None


OrderBuilder = Callable[..., tuple[np.ndarray, np.ndarray] | StreamParts]
# Builders `builder(dataset, n, rng, **options) -> (order, task)` (or `StreamParts`).
STREAMS: Registry[OrderBuilder] = Registry("stream")
register_stream = STREAMS.register


def build_stream(
    name: str,
    dataset: Dataset,
    arrivals: ArrivalProcess,
    seed: int = 0,
    length: int | None = None,
    **options: Any,
) -> Stream:
    """A stream of `length` data (default: the whole training set once) arriving by `arrivals`."""
    _load_builtin_streams()
    builder = STREAMS[name]
    n = len(dataset) if length is None else length
    if n <= 0:
        raise FerretError(f"a stream needs at least one datum, got length {n}")
    checked = checked_options("stream", name, builder, 3, options)  # after (dataset, n, rng)
    rng = np.random.default_rng(seed)
    result = builder(dataset, n, rng, **checked)
    test_task = None
    if isinstance(result, StreamParts):
        order, task, dataset, test_task = result.order, result.task, result.dataset, result.test_task
    else:
        order, task = result
    times = arrivals.times(n, seed=seed)
    return Stream(name, dataset, np.asarray(order, dtype=np.int64), times, np.asarray(task, dtype=np.int64), test_task)


@register_stream("iid")
def iid_order(dataset: Dataset, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly shuffled passes over the training set (repeated if `n` exceeds it)."""
    passes = -(-n // len(dataset))
    order = np.concatenate([rng.permutation(len(dataset)) for _ in range(passes)])[:n]
    return order, np.zeros(n, dtype=np.int64)


def _load_builtin_streams() -> None:
    import executor.data.stream_builders  # noqa: F401
