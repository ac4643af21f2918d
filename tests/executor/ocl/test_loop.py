"""The loop's evaluation checkpoints, seen classes/domains, memory records and RunSetup checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from executor.data import Dataset, Stream
from executor.metrics import seen_accuracy_curve, summarize
from executor.models import build_model
from executor.ocl.frameworks import FrameworkOptions, build_framework
from executor.ocl.setup import RunSetup
from planner.errors import FerretError
from tests.executor.ocl.helpers import flat_profile, hand_setup, linear_model, tiny_dataset


def test_checkpoints_every_e_arrivals_and_at_the_end():
    arrivals = np.arange(23) * 0.5
    result = build_framework("1-skip").run(hand_setup(arrivals, 0.25, 0.5, eval_every=10))
    assert result.checkpoint_samples.tolist() == [10, 20, 23]
    np.testing.assert_array_equal(result.checkpoint_time_s, arrivals[[9, 19, 22]])
    only_end = build_framework("1-skip").run(hand_setup(arrivals, 0.25, 0.5, eval_every=0))
    assert only_end.checkpoint_samples.tolist() == [23]


def test_final_checkpoint_is_the_final_model_on_seen_classes():
    # Classes 0 and 1 only (rows 0, 1, 3, 4, ...): class 2's test rows must not count.
    dataset = tiny_dataset(n_train=30, n_test=12)
    order = np.array([i for i in range(30) if i % 3 != 2])
    stream = Stream("two-classes", dataset, order, np.arange(len(order)) * 1.0, np.zeros(len(order), dtype=np.int64))
    model = linear_model(dataset)
    result = build_framework("oracle").run(RunSetup(stream, model, flat_profile(model, 0.1, 0.2), eval_every=5))
    assert not result.seen[:, 2].any() and result.seen[:, :2].all()
    with torch.no_grad():
        predicted = model(torch.from_numpy(dataset.x_test)).argmax(dim=1).numpy()
    keep = dataset.y_test != 2
    expected = 100.0 * (predicted[keep] == dataset.y_test[keep]).mean()
    assert seen_accuracy_curve(result.group_correct, result.group_total, result.seen)[-1] == pytest.approx(expected)


def test_domains_count_once_their_task_has_arrived():
    base = tiny_dataset(n_train=12, n_test=6)
    # Two domains: the test set twice (domain 0 then 1), the stream's second half is domain 1.
    dataset = Dataset(
        "two-domains",
        base.x_train,
        base.y_train,
        np.concatenate([base.x_test, base.x_test + 1]),
        np.concatenate([base.y_test, base.y_test]),
        num_classes=3,
    )
    task = np.repeat([0, 1], 6)
    stream = Stream("domains", dataset, np.arange(12), np.arange(12) * 1.0, task, test_task=np.repeat([0, 1], 6))
    model = linear_model(dataset)
    result = build_framework("oracle").run(RunSetup(stream, model, flat_profile(model, 0.1, 0.2), eval_every=3))
    assert result.group_total.tolist() == [2] * 6  # (domain, class) cells
    # Checkpoints at 3, 6, 9, 12: domain 1 is seen from position 6 on, i.e. after 7 arrivals.
    assert result.seen[:, 3:].any(axis=1).tolist() == [False, False, True, True]
    assert result.seen[0, :3].tolist() == [True, True, True]


def test_b_skip_window_memory_is_charged_and_bounded():
    arrivals = np.arange(30) * 0.01  # far faster than a step: the window fills
    setup = hand_setup(arrivals, 0.25, 0.5)
    result = build_framework("last-n", FrameworkOptions(batch_size=2, window=5)).run(setup)
    bytes_per_sample = setup.stream.dataset.stored_bytes_per_sample
    assert result.peak_memory_by_category["window"] == 5 * bytes_per_sample
    summary = summarize(result)
    assert summary["trained"] + summary["skipped"] == 30
    assert summary["measured_peak_memory_bytes"] == result.peak_memory_bytes > 0


def test_run_setup_refuses_a_profile_of_another_model():
    dataset = tiny_dataset()
    deep = build_model("mlp", dataset.input_shape, 3, hidden=(4,))
    stream = Stream("s", dataset, np.arange(3), np.zeros(3), np.zeros(3, dtype=np.int64))
    with pytest.raises(FerretError, match="has 2 layers but the model has 1"):
        RunSetup(stream, linear_model(dataset), flat_profile(deep, 0.1, 0.1))
    with pytest.raises(FerretError, match="eval-every"):
        RunSetup(stream, deep, flat_profile(deep, 0.1, 0.1), eval_every=-1)
