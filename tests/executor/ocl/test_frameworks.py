"""Frameworks against hand schedules: who is trained on, when, and with which model predicted."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from executor.data import Dataset, Stream
from executor.models.base import LayeredModel
from executor.ocl.frameworks import FrameworkOptions, build_framework
from executor.ocl.learner import OptimizerConfig
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup
from planner.errors import FerretError
from planner.profile import LayerProfile, ModelProfile
from tests.executor.ocl.helpers import flat_profile, hand_setup

SGD = OptimizerConfig(name="sgd", lr=0.5)


def run(name: str, setup: RunSetup, **options: int) -> RunResult:
    return build_framework(name, FrameworkOptions(**options)).run(setup)


def reference_predictions(
    initial: torch.nn.Module, setup: RunSetup, result: RunResult, side: str = "right"
) -> np.ndarray:
    """Replay the run by hand: plain SGD steps in the order they ended, one model snapshot after
    each; datum j is predicted by the snapshot after every step that ended at or before it
    (`side="left"`: strictly before, the wrong rule, for contrast)."""
    model = copy.deepcopy(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=setup.optimizer.lr)
    data = setup.stream.dataset
    x = torch.from_numpy(data.x_train[setup.stream.order])
    y = torch.from_numpy(data.y_train[setup.stream.order])
    ends = np.unique(result.trained_at_s[result.trained])
    snapshots = [predict_all(model, x)]
    for end in ends:
        rows = np.flatnonzero(result.trained_at_s == end)
        loss = F.cross_entropy(model(x[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        snapshots.append(predict_all(model, x))
    visible = np.searchsorted(ends, result.arrival_s, side=side)
    return np.array([snapshots[k][j] for j, k in enumerate(visible)])


@torch.no_grad()
def predict_all(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    return model(x).argmax(dim=1).numpy()


def test_oracle_trains_on_every_datum_at_its_arrival():
    arrivals = [0.0, 0.25, 0.5, 3.0, 3.0, 7.5]
    setup = hand_setup(arrivals, 1.0, 2.0, optimizer=SGD)
    model = copy.deepcopy(setup.model)
    result = run("oracle", setup)
    assert result.steps == len(arrivals)
    np.testing.assert_array_equal(result.trained_at_s, arrivals)
    # Test-then-train: datum i is predicted by the model trained on data 0..i-1.
    optimizer = torch.optim.SGD(model.parameters(), lr=SGD.lr)
    x, y = torch.from_numpy(setup.stream.dataset.x_train), torch.from_numpy(setup.stream.dataset.y_train)
    expected = []
    for i in range(len(arrivals)):
        logits = model(x[i : i + 1])
        expected.append(int(logits.argmax()))
        loss = F.cross_entropy(logits, y[i : i + 1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    np.testing.assert_array_equal(result.predicted, expected)


def test_one_skip_trains_exactly_the_data_that_arrive_to_a_free_learner():
    # A step takes 0.5 + 2.0 = 2.5 s. Hand schedule:
    #   #0 at 0      -> busy [0, 2.5]; #1, #2 arrive busy (skipped)
    #   idle at 2.5; #3 at 2.625 -> busy [2.625, 5.125]; #4, #5 skipped
    #   #6 at 5.25   -> busy [5.25, 7.75]
    #   #7 at 7.75 arrives as that step ends: the learner is free -> busy [7.75, 10.25]; #8, #9 skipped
    #   #10 at 10.5 -> its step would end at 13 > T = 10.5: discarded, #10 untrained
    arrivals = [0, 0.5, 1, 2.625, 2.75, 5.0, 5.25, 7.75, 8.0, 8.125, 10.5]
    # Datum 6 is a class-1 row, datum 3 a class-0 row: with a large step the model predicts the
    # class it was last trained on, so #7's prediction shows which update it saw.
    order = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    setup = hand_setup(arrivals, 0.5, 2.0, order=order, optimizer=OptimizerConfig(name="sgd", lr=5.0))
    initial = copy.deepcopy(setup.model)
    result = run("1-skip", setup)
    expected = np.full(len(arrivals), np.inf)
    expected[[0, 3, 6, 7]] = [2.5, 5.125, 7.75, 10.25]
    np.testing.assert_array_equal(result.trained_at_s, expected)
    assert result.steps == 5  # the discarded step was started (and costed) too
    np.testing.assert_array_equal(result.predicted, reference_predictions(initial, setup, result))
    # The rule is observable here: #7 sees the update of the step ending at its arrival.
    assert not np.array_equal(result.predicted, reference_predictions(initial, setup, result, side="left"))


def test_last_n_b_skip_hand_schedule():
    # N = 2, B = 3, 1.5 s per sample, one arrival per second (see docs/ocl.md for the rules):
    #   [0] at 0 -> ends 1.5;  [1] at 1.5 -> ends 3;  window {2, 3} at 3 -> ends 6
    #   window {4, 5, 6} at 6 -> trains the last two {5, 6}, ends 9; #4 stays
    #   window {4, 7, 8} + #9 at 9 pushes #4 out -> {8, 9} would end at 12 > T = 9: discarded
    arrivals = [float(i) for i in range(10)]
    setup = hand_setup(arrivals, 0.5, 1.0, optimizer=SGD)
    initial = copy.deepcopy(setup.model)
    result = run("last-n", setup, batch_size=2, window=3)
    expected = np.full(10, np.inf)
    expected[[0, 1, 2, 3, 5, 6]] = [1.5, 3.0, 6.0, 6.0, 9.0, 9.0]
    np.testing.assert_array_equal(result.trained_at_s, expected)
    np.testing.assert_array_equal(result.predicted, reference_predictions(initial, setup, result))


def test_last_n_with_a_fitted_fixed_step_cost_trains_more_of_the_stream():
    # The schedule above, but batching amortises: a 1-row step still takes 1.5 s, a 2-row step
    # 2 s (1 s fixed + 0.5 s per row, fitted from profiles at batch 1 and 2), not 3 s:
    #   [0] -> 1.5;  [1] -> 3;  {2, 3} at 3 -> 5;  {4, 5} at 5 -> 7;  {6, 7} at 7 -> 9;
    #   {8, 9} at 9 would end at 11 > T = 9: discarded. Eight trained instead of six.
    arrivals = [float(i) for i in range(10)]
    base = hand_setup(arrivals, 0.5, 1.0, optimizer=SGD)
    pair = ModelProfile(
        base.profile.model,
        tuple(LayerProfile(layer.name, 0.75, 1.25, 0, 0) for layer in base.profile.layers),
        batch_size=2,
        source="synthetic",
    )
    setup = dataclasses.replace(base, batch_profiles=(pair,))
    assert setup.cost_model.step_s(1) == pytest.approx(1.5) and setup.cost_model.step_s(2) == pytest.approx(2.0)
    result = run("last-n", setup, batch_size=2, window=3)
    expected = np.full(10, np.inf)
    expected[:8] = [1.5, 3.0, 5.0, 5.0, 7.0, 7.0, 9.0, 9.0]
    np.testing.assert_allclose(result.trained_at_s, expected)


def test_batch_profile_of_another_model_is_refused():
    base = hand_setup([0.0, 1.0], 0.5, 1.0)
    other = ModelProfile("other", base.profile.layers, batch_size=4, source="synthetic")
    with pytest.raises(FerretError, match="batch profile of 'other'"):
        dataclasses.replace(base, batch_profiles=(other,))


@settings(max_examples=25, deadline=None)
@given(
    gaps=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0]), min_size=1, max_size=40),
    batch=st.integers(1, 4),
    extra_window=st.integers(0, 4),
    seed=st.integers(0, 3),
)
def test_random_n_picks_n_of_the_latest_b_on_last_ns_schedule(gaps, batch, extra_window, seed):
    arrivals = np.concatenate([[0.0], np.cumsum(gaps)])
    window = batch + extra_window
    random_n = run("random-n", hand_setup(arrivals, 0.25, 0.5, seed=seed), batch_size=batch, window=window)
    last_n = run("last-n", hand_setup(arrivals, 0.25, 0.5, seed=seed), batch_size=batch, window=window)
    # Which data are chosen never changes how many are, so both run the same schedule.
    ends_r, counts_r = np.unique(random_n.trained_at_s[random_n.trained], return_counts=True)
    ends_l, counts_l = np.unique(last_n.trained_at_s[last_n.trained], return_counts=True)
    np.testing.assert_array_equal(ends_r, ends_l)
    np.testing.assert_array_equal(counts_r, counts_l)
    for end, count in zip(ends_r, counts_r, strict=True):
        assert count <= batch
        start = end - count * 0.75
        chosen = np.flatnonzero(random_n.trained_at_s == end)
        waiting = np.flatnonzero((arrivals <= start) & (random_n.trained_at_s > start))
        # Each was among the B latest data not yet trained on when the step started (data pushed
        # out of the window are older than everything in it, so the window is a subset of these).
        assert set(chosen) <= set(waiting[-window:])


def test_b_skip_with_window_one_is_one_skip_like():
    arrivals = [0, 0.5, 1, 2.625, 2.75, 5.0]
    result = run("last-n", hand_setup(arrivals, 0.5, 2.0), batch_size=1, window=1)
    # With B = 1 the latest arrival waits: #2 (at 1) is the newest when the learner frees at 2.5.
    assert result.trained_at_s[2] == 5.0 and result.trained_at_s[0] == 2.5


@pytest.mark.parametrize("name", ["random-n", "camel", "1-skip", "oracle"])
def test_same_seed_same_run(name):
    arrivals = np.arange(40) * 0.1
    a = run(name, hand_setup(arrivals, 0.25, 0.5, seed=3), batch_size=3, window=6)
    b = run(name, hand_setup(arrivals, 0.25, 0.5, seed=3), batch_size=3, window=6)
    np.testing.assert_array_equal(a.predicted, b.predicted)
    np.testing.assert_array_equal(a.trained_at_s, b.trained_at_s)
    np.testing.assert_array_equal(a.group_correct, b.group_correct)


def test_training_flops_and_busy_time_follow_the_profile():
    arrivals = [0, 0.5, 1, 2.625, 2.75, 5.0, 5.25, 7.75, 8.0, 8.125, 10.5]
    plain = hand_setup(arrivals, 0.5, 2.0)
    setup = RunSetup(plain.stream, plain.model, flat_profile(plain.model, 0.5, 2.0, flops=100), optimizer=SGD)
    result = run("1-skip", setup)
    # Five one-sample steps: forward FF + backward 2·FF each (SPEC §10.1), 2.5 s each.
    assert result.train_flops == 5 * 3 * 100
    assert result.busy_s == 5 * 2.5


def test_unknown_framework_and_bad_options_are_user_errors():
    with pytest.raises(FerretError, match="unknown framework 'nope'"):
        build_framework("nope")
    with pytest.raises(FerretError, match="--window"):
        build_framework("random-n", FrameworkOptions(batch_size=5, window=2))


def test_oracle_predicts_in_eval_mode_when_train_and_eval_differ():
    # Classes differ by their level, which a per-sample (train-mode) normalisation erases.
    rng = np.random.default_rng(0)
    labels = np.arange(12, dtype=np.int64) % 3
    levels = (1.5 * labels[:, None, None] + rng.normal(0, 0.3, (12, 1, 4))).astype(np.float32)
    images = Dataset("levels", levels, labels, levels[:3], labels[:3], 3)
    torch.manual_seed(0)
    layers = [
        ("features", nn.Sequential(nn.BatchNorm1d(1), nn.Flatten(), nn.Linear(4, 6), nn.ReLU())),
        ("classifier", nn.Linear(6, 3)),
    ]
    model = LayeredModel("bn-net", layers, (1, 4), 3)
    stream = Stream("s", images, np.arange(12), np.arange(12) * 1.0, np.zeros(12, dtype=np.int64))
    setup = RunSetup(stream, model, flat_profile(model, 0.1, 0.2), optimizer=SGD)
    reference = copy.deepcopy(model)
    result = run("oracle", setup)
    # By hand: predict in eval mode (running statistics), then one SGD step in train mode.
    optimizer = torch.optim.SGD(reference.parameters(), lr=SGD.lr)
    x, y = torch.from_numpy(images.x_train), torch.from_numpy(images.y_train)
    expected, train_mode = [], []
    for i in range(12):
        reference.eval()
        with torch.no_grad():
            expected.append(int(reference(x[i : i + 1]).argmax()))
        probe = copy.deepcopy(reference).train()
        with torch.no_grad():
            train_mode.append(int(probe(x[i : i + 1]).argmax()))
        reference.train()
        loss = F.cross_entropy(reference(x[i : i + 1]), y[i : i + 1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    np.testing.assert_array_equal(result.predicted, expected)
    assert train_mode != expected  # a train-mode forward would have predicted differently
    assert model.training
