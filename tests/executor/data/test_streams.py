"""Stream builders: task order, blurry boundaries, domain shifts, determinism."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.data import build_stream, load_dataset
from planner.errors import FerretError
from sim.arrivals import FixedArrivals, PoissonArrivals

ARRIVALS = FixedArrivals(1e-3)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def small_dataset(num_classes: int, per_class: int):
    return load_dataset(
        "synthetic", num_classes=num_classes, train_size=num_classes * per_class, test_size=10, shape="3", seed=1
    )


@settings(max_examples=25, deadline=None)
@given(
    classes=st.integers(2, 12),
    tasks_frac=st.floats(0, 1),
    length_frac=st.floats(0.3, 2.5),
    order=st.sampled_from(["sorted", "random"]),
    seed=st.integers(0, 2**16),
)
def test_class_incremental_respects_tasks(classes, tasks_frac, length_frac, order, seed):
    ds = small_dataset(classes, 20)
    tasks = 1 + round(tasks_frac * (classes - 1))
    n = max(1, round(length_frac * len(ds)))
    s = build_stream("class-incremental", ds, ARRIVALS, seed=seed, length=n, tasks=tasks, class_order=order)
    assert len(s) == n
    assert (np.diff(s.task) >= 0).all()  # tasks come in order
    groups = [set(s.labels[s.task == t].tolist()) for t in range(tasks)]
    for a in range(tasks):
        for b in range(a + 1, tasks):
            assert not groups[a] & groups[b]  # disjoint class groups
    present = set(np.unique(ds.y_train).tolist())
    if n >= len(ds):
        assert set().union(*groups) == present  # every class appears
        assert all(groups)  # no empty task


def test_class_incremental_digits_split(digits):
    s = build_stream("class-incremental", digits, ARRIVALS, seed=0)
    assert s.num_tasks == 5
    for t in range(5):
        assert set(s.labels[s.task == t].tolist()) == {2 * t, 2 * t + 1}  # Split-MNIST pairs
    assert sorted(s.order.tolist()) == list(range(len(digits)))  # one pass over the set


def segment_mixing(stream) -> float:
    """Share of data that fall outside the segment their task would occupy with sharp boundaries."""
    counts = np.bincount(stream.task, minlength=stream.num_tasks)
    segment = np.repeat(np.arange(len(counts)), counts)
    return float((segment != stream.task).mean())


def test_blurry_sigma_zero_is_class_incremental(digits):
    ci = build_stream("class-incremental", digits, ARRIVALS, seed=3)
    b0 = build_stream("blurry", digits, ARRIVALS, seed=3, sigma=0.0)
    np.testing.assert_array_equal(ci.order, b0.order)
    assert segment_mixing(b0) == 0.0


def test_blurry_mixing_grows_with_sigma(digits):
    sigmas = [0.05, 0.2, 0.5, 1.5]
    mixing = [
        np.mean([segment_mixing(build_stream("blurry", digits, ARRIVALS, seed=s, sigma=sig)) for s in range(3)])
        for sig in sigmas
    ]
    assert all(a < b for a, b in itertools.pairwise(mixing)), mixing
    # Neighbouring task centres are 1 apart: at sigma = 0.05 their keys overlap only beyond
    # ~14 standard deviations of the difference, so nothing leaves its segment.
    assert mixing[0] < 1e-3
    assert mixing[-1] > 0.4


def test_blurry_keeps_the_same_data(digits):
    b = build_stream("blurry", digits, ARRIVALS, seed=2, sigma=0.7)
    assert sorted(b.order.tolist()) == list(range(len(digits)))
    assert (b.task == b.labels // 2).all()  # each datum keeps its nominal task


@pytest.mark.parametrize("name", ["iid", "class-incremental", "blurry", "domain-incremental", "sequential"])
def test_same_seed_same_stream(digits, name):
    arrivals = PoissonArrivals(1e-3)
    a = build_stream(name, digits, arrivals, seed=7, length=500)
    b = build_stream(name, digits, arrivals, seed=7, length=500)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.dataset.x_train[a.order], b.dataset.x_train[b.order])
    if name != "sequential":
        c = build_stream(name, digits, arrivals, seed=8, length=500)
        assert not np.array_equal(a.dataset.x_train[a.order], c.dataset.x_train[c.order])


def originals(digits, stream):
    """For each stream datum, the training rows of the original set with the same label."""
    return [np.flatnonzero(digits.y_train == y) for y in stream.labels]


def test_domain_incremental_permute(digits):
    s = build_stream("domain-incremental", digits, ARRIVALS, seed=0, tasks=3, shift="permute", length=300)
    assert s.task.tolist() == [0] * 100 + [1] * 100 + [2] * 100
    x = s.dataset.x_train[s.order].reshape(300, -1)
    pool = digits.x_train.reshape(len(digits), -1)
    pool_bytes = {row.tobytes() for row in pool}
    assert all(x[i].tobytes() in pool_bytes for i in range(100))  # task 0: untouched data
    sorted_pool = {np.sort(row).tobytes() for row in pool}
    assert all(np.sort(x[i]).tobytes() in sorted_pool for i in range(100, 300))  # a permutation
    assert sum(x[i].tobytes() in pool_bytes for i in range(100, 300)) < 10
    # The test set appears once per domain, labelled by test_task, labels tiled.
    assert s.test_task.tolist() == np.repeat([0, 1, 2], len(digits.y_test)).tolist()
    np.testing.assert_array_equal(s.dataset.x_test[: len(digits.y_test)], digits.x_test)
    np.testing.assert_array_equal(s.dataset.y_test, np.tile(digits.y_test, 3))


def test_domain_incremental_rotate_and_noise(digits):
    rot = build_stream("domain-incremental", digits, ARRIVALS, seed=0, tasks=3, shift="rotate", max_angle=180.0)
    n_test = len(digits.y_test)
    # Task 2 of 3 rotates by 180°: the test images are flipped in both axes.
    np.testing.assert_allclose(rot.dataset.x_test[2 * n_test :], digits.x_test[:, :, ::-1, ::-1], atol=1e-5)
    np.testing.assert_allclose(rot.dataset.x_test[:n_test], digits.x_test, atol=1e-6)
    noise = build_stream("domain-incremental", digits, ARRIVALS, seed=0, tasks=4, shift="noise", max_noise=0.6)
    residual = [(noise.dataset.x_test[t * n_test : (t + 1) * n_test] - digits.x_test).std() for t in range(4)]
    np.testing.assert_allclose(residual, [0.0, 0.2, 0.4, 0.6], atol=0.01)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("class-incremental", {"tasks": 11}, "tasks must be between 1 and the 10 classes"),
        ("class-incremental", {"class_order": "alphabetical"}, "class_order must be"),
        ("blurry", {"sigma": -1.0}, "sigma must be"),
        ("blurry", {"tau": 1.0}, "does not take option\\(s\\) tau"),
        ("domain-incremental", {"shift": "blur"}, "shift must be one of"),
        ("domain-incremental", {"tasks": 0}, "tasks must be ≥ 1"),
    ],
)
def test_bad_stream_options(digits, name, options, message):
    with pytest.raises(FerretError, match=message):
        build_stream(name, digits, ARRIVALS, **options)


def test_rotation_needs_images():
    ds = small_dataset(3, 10)
    with pytest.raises(FerretError, match="needs \\(C, H, W\\) images"):
        build_stream("domain-incremental", ds, ARRIVALS, shift="rotate")
