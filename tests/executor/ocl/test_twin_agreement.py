"""The twin's sequential learners (1-Skip, Last-N, Random-N) train exactly the data the
executor's frameworks train, at the same times, on the same stream, with the same fitted
step cost (a fixed part that batching amortises)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from executor.ocl.frameworks import FrameworkOptions, build_framework
from executor.ocl.setup import RunSetup
from executor.replay import GivenArrivals
from planner.profile import LayerProfile, ModelProfile
from sim import SimConfig, sequential_plan, simulate
from sim.costs import ProfileCosts
from tests.executor.ocl.helpers import hand_setup

N, B = 3, 7  # B-Skip: train on N of the latest B


def setup_for(arrival_s: np.ndarray) -> RunSetup:
    # A 1-row step costs 1.5 s, a 4-row step 2.5 s: fitted fixed part 7/6 s, 1/3 s per row.
    base = hand_setup(arrival_s, 0.5, 1.0)
    four = ModelProfile(
        base.profile.model,
        tuple(LayerProfile(layer.name, 1.0, 1.5, 0, 0) for layer in base.profile.layers),
        batch_size=4,
        source="synthetic",
    )
    return dataclasses.replace(base, batch_profiles=(four,))


def executor_trained_at(name: str, setup: RunSetup) -> np.ndarray:
    return build_framework(name, FrameworkOptions(batch_size=N, window=B)).run(setup).trained_at_s


def twin_trained_at(name: str, setup: RunSetup) -> np.ndarray:
    """The twin's first update of each datum, as the executor counts it: only steps that end
    by the last arrival (the executor discards the step running then)."""
    arrival = setup.stream.arrival_s
    layers = setup.profile.num_layers
    costs = ProfileCosts.from_profiles((setup.profile, *setup.batch_profiles), (0, layers))
    plan = sequential_plan(layers, 0.5, name, minibatch=1 if name == "1-skip" else N)  # the interval: unused
    config = SimConfig(input_buffer=None if name == "1-skip" else B)
    result = simulate(plan, setup.profile, len(arrival), GivenArrivals(arrival), config=config, costs=costs)
    first = result.update_s[:, 0]
    return np.where(first <= arrival[-1], first, np.inf)


STREAMS = {
    "poisson": np.concatenate(([0.0], np.cumsum(np.random.default_rng(7).exponential(0.45, 119)))),
    "bursts": np.repeat(np.cumsum(np.random.default_rng(3).exponential(1.3, 40)), 3),  # three data at once
    "periodic": np.arange(120) * 0.5,  # steps end exactly as data arrive: the tie rules decide
}


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("name", ["1-skip", "last-n"])
def test_twin_and_executor_train_the_same_data_at_the_same_times(name, stream):
    setup = setup_for(STREAMS[stream])
    executor, twin = executor_trained_at(name, setup), twin_trained_at(name, setup)
    assert np.isfinite(executor).sum() > 10
    np.testing.assert_array_equal(np.isfinite(twin), np.isfinite(executor))
    np.testing.assert_allclose(twin[np.isfinite(twin)], executor[np.isfinite(executor)], rtol=1e-12)


@pytest.mark.parametrize("stream", STREAMS)
def test_random_n_trains_as_many_data_at_the_same_step_ends(stream):
    # Which data Random-N draws depends on each side's random stream; how many it trains and
    # when its steps end do not (the window's fill does not depend on which data left it).
    setup = setup_for(STREAMS[stream])
    executor, twin = executor_trained_at("random-n", setup), twin_trained_at("random-n", setup)
    np.testing.assert_allclose(np.sort(twin[np.isfinite(twin)]), np.sort(executor[np.isfinite(executor)]), rtol=1e-12)
