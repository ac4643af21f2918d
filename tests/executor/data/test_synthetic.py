"""The synthetic generator: deterministic, learnable, and drifting as asked."""

import numpy as np
import pytest

from executor.data import build_stream, load_dataset
from planner.errors import FerretError
from sim.arrivals import FixedArrivals


def nearest_centroid_accuracy(x_fit, y_fit, x_eval, y_eval, k):
    flat_fit, flat_eval = x_fit.reshape(len(x_fit), -1), x_eval.reshape(len(x_eval), -1)
    centroids = np.stack([flat_fit[y_fit == c].mean(axis=0) for c in range(k)])
    pred = ((flat_eval[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    return (pred == y_eval).mean()


def test_deterministic_by_seed():
    a = load_dataset("synthetic", seed=4, train_size=200, test_size=50, drift="gradual")
    b = load_dataset("synthetic", seed=4, train_size=200, test_size=50, drift="gradual")
    c = load_dataset("synthetic", seed=5, train_size=200, test_size=50, drift="gradual")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16), (20,)])
def test_learnable_not_noise(shape):
    ds = load_dataset("synthetic", seed=0, shape=shape, num_classes=5, train_size=1000, test_size=500)
    assert ds.input_shape == shape and ds.x_train.dtype == np.float32
    acc = nearest_centroid_accuracy(ds.x_train, ds.y_train, ds.x_test, ds.y_test, 5)
    assert acc > 0.8  # chance is 0.2
    noisy = load_dataset("synthetic", seed=0, shape=shape, num_classes=5, train_size=1000, test_size=500, noise=50.0)
    assert nearest_centroid_accuracy(noisy.x_train, noisy.y_train, noisy.x_test, noisy.y_test, 5) < acc


def test_drift_kinds():
    n, k = 4000, 4
    opts = {"seed": 1, "num_classes": k, "train_size": n, "test_size": 800, "shape": "16"}
    first, last = slice(0, n // 4), slice(3 * n // 4, n)

    def transfer(ds):
        """Accuracy on the last quarter of the stream of centroids fitted on the first quarter."""
        return nearest_centroid_accuracy(ds.x_train[first], ds.y_train[first], ds.x_train[last], ds.y_train[last], k)

    none, abrupt = load_dataset("synthetic", drift="none", **opts), load_dataset("synthetic", drift="abrupt", **opts)
    gradual = load_dataset("synthetic", drift="gradual", **opts)
    recurring = load_dataset("synthetic", drift="recurring", periods=4, **opts)
    assert transfer(none) > 0.9
    assert transfer(abrupt) < 0.6 and transfer(gradual) < 0.75
    # Recurring with 4 periods: concept A, B, A, B — the second quarter differs from the first,
    # the third quarter is the first's concept again.
    q = n // 4
    second, third = slice(q, 2 * q), slice(2 * q, 3 * q)
    r = recurring
    assert nearest_centroid_accuracy(r.x_train[first], r.y_train[first], r.x_train[third], r.y_train[third], k) > 0.9
    assert nearest_centroid_accuracy(r.x_train[first], r.y_train[first], r.x_train[second], r.y_train[second], k) < 0.6
    # The test set follows the concept in force at the end of the stream.
    assert nearest_centroid_accuracy(abrupt.x_train[last], abrupt.y_train[last], abrupt.x_test, abrupt.y_test, k) > 0.9


def test_sequential_stream_keeps_the_time_order():
    ds = load_dataset("synthetic", train_size=30, test_size=5, drift="abrupt")
    stream = build_stream("sequential", ds, FixedArrivals(0.01), length=45)
    assert stream.order.tolist() == list(range(30)) + list(range(15))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"drift": "sideways"}, "drift must be one of"),
        ({"shape": "3,x"}, "comma-separated integers"),
        ({"shape": (1, 2, 3, 4)}, "1 to 3 positive sizes"),
        ({"num_classes": 1}, "num_classes ≥ 2"),
        ({"noise": -1.0}, "noise must be"),
        ({"colour": "red"}, "does not take option"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(FerretError, match=message):
        load_dataset("synthetic", **options)
