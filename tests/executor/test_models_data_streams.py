"""The executor spine: layered models, the digits data set and iid streams."""

import numpy as np
import pytest
import torch

from executor.data import build_stream, load_dataset
from executor.models import build_model
from planner.errors import FerretError
from sim.arrivals import FixedArrivals


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("name", ["mlp", "mnistnet"])
def test_models_adapt_to_input_shape(name, shape):
    model = build_model(name, shape, 7, seed=0)
    x = torch.zeros(5, *shape)
    assert model(x).shape == (5, 7)
    # Running the stages one by one equals running the whole model.
    h = x
    for j in range(model.num_layers):
        h = model.forward_range(h, j, j + 1)
    assert torch.equal(h, model(x))
    assert model.features(x).shape[1] == model.classifier.in_features


def test_seeded_build_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("mnistnet", (1, 8, 8), 10, seed=3)
    b = build_model("mnistnet", (1, 8, 8), 10, seed=3)
    assert torch.equal(torch.rand(1), before)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_unknown_model():
    with pytest.raises(FerretError, match="unknown model 'resnet9000'"):
        build_model("resnet9000", (1, 8, 8), 10)


def test_digits_dataset():
    ds = load_dataset("digits")
    assert ds.input_shape == (1, 8, 8)
    assert len(ds) + len(ds.y_test) == 1797
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert set(np.unique(ds.y_test)) == set(range(10))


def test_iid_stream_is_deterministic_and_covers_the_set():
    ds = load_dataset("digits")
    s1 = build_stream("iid", ds, FixedArrivals(1e-3), seed=4)
    s2 = build_stream("iid", ds, FixedArrivals(1e-3), seed=4)
    assert np.array_equal(s1.order, s2.order)
    assert sorted(s1.order.tolist()) == list(range(len(ds)))
    assert s1.arrival_s[1] == pytest.approx(1e-3)
    longer = build_stream("iid", ds, FixedArrivals(1e-3), seed=4, length=2 * len(ds) + 5)
    assert len(longer) == 2 * len(ds) + 5
