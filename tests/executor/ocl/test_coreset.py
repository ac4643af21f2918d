"""Camel's coreset: greedy class-conditional facility location, checked on hand cases."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from executor.ledger import ByteLedger
from executor.ocl.coreset import (
    facility_location_objective,
    greedy_coreset,
    l2_normalise,
    pairwise_distances,
    select_coreset,
)
from executor.ocl.frameworks.camel import CamelPolicy
from executor.ocl.replay_buffer import ReplayBuffer

# Points on a line: class 0 at 0, 1, 3; class 1 at 10, 11. d_max = 11.
POSITIONS = np.array([0.0, 1.0, 3.0, 10.0, 11.0])
LABELS = np.array([0, 0, 0, 1, 1])
DISTANCES = np.abs(POSITIONS[:, None] - POSITIONS[None, :])


def test_greedy_facility_location_by_hand():
    # Step 1 gains (Σ over same-class i of 11 − D[i, s]): a 29, b 30, c 28, d 21, e 21 → b.
    # Step 2, costs now (1, 0, 2, 11, 11): a 1, c 2, d 21, e 21 → d (tie: lowest index).
    chosen, weights = greedy_coreset(DISTANCES, LABELS, 2)
    assert chosen.tolist() == [1, 3]
    assert weights.tolist() == [3, 2]  # b represents a, b, c; d represents d, e
    # Step 3, costs (1, 0, 2, 0, 1): a 1, c 2, e 1 → c; a stays with b (1 < 3).
    chosen, weights = greedy_coreset(DISTANCES, LABELS, 3)
    assert chosen.tolist() == [1, 3, 2]
    assert weights.tolist() == [2, 2, 1]
    assert facility_location_objective(DISTANCES, LABELS, chosen) == 11 - (1 + 0 + 0 + 0 + 1) / 5


def test_select_coreset_normalises_features_by_hand():
    # Unit vectors: a=(1,0), b=(.8,.6), c=(0,1) of class 0; d=(-1,0), e=(-.8,-.6) of class 1.
    # d_max = |a − d| = 2. Gains: a 3.954, b 4.474, c 3.692, d = e 3.368 → b; then d (3.368).
    unit = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0], [-0.8, -0.6]])
    scale = np.array([[5.0], [0.1], [2.0], [7.0], [0.5]])  # lengths must not matter
    chosen, weights = select_coreset(unit * scale, LABELS, 2)
    assert chosen.tolist() == [1, 3] and weights.tolist() == [3, 2]


def test_empty_class_counts_d_max_and_whole_window_when_k_is_large():
    chosen, weights = greedy_coreset(DISTANCES, LABELS, 10)
    assert sorted(chosen.tolist()) == [0, 1, 2, 3, 4]
    assert weights.tolist() == [1, 1, 1, 1, 1]
    assert facility_location_objective(DISTANCES, LABELS, np.array([], dtype=np.int64)) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    features=arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 4)), elements=st.floats(-3, 3)),
    k=st.integers(1, 5),
    data=st.data(),
)
def test_each_greedy_pick_maximises_the_objective(features, k, data):
    labels = np.array(data.draw(st.lists(st.integers(0, 2), min_size=len(features), max_size=len(features))))
    distances = pairwise_distances(l2_normalise(features))
    chosen, weights = greedy_coreset(distances, labels, k)
    assert len(set(chosen.tolist())) == len(chosen) == min(k, len(labels))
    picked: list[int] = []
    for s in chosen.tolist():
        best = max(
            facility_location_objective(distances, labels, np.array([*picked, t]))
            for t in range(len(labels))
            if t not in picked
        )
        assert facility_location_objective(distances, labels, np.array([*picked, s])) >= best - 1e-9
        picked.append(s)
    # Weights count every point whose class has a chosen point exactly once.
    represented = np.isin(labels, labels[chosen])
    assert weights.sum() == represented.sum() and (weights >= 1).all()


class FixedView:
    """A stream view whose features are given (no model)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray) -> None:
        self._features = torch.as_tensor(features, dtype=torch.float32)
        self._labels = torch.as_tensor(labels)

    def inputs(self, positions: np.ndarray) -> torch.Tensor:
        return self._features[torch.from_numpy(positions)]

    def targets(self, positions: np.ndarray) -> torch.Tensor:
        return self._labels[torch.from_numpy(positions)]

    def features(self, positions: np.ndarray) -> torch.Tensor:
        return self._features[torch.from_numpy(positions)]


def test_camel_policy_trains_on_the_weighted_coreset_and_keeps_representatives():
    unit = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0], [-0.8, -0.6]], dtype=np.float32)
    view = FixedView(unit, LABELS)
    ledger = ByteLedger()
    buffer = ReplayBuffer(10, 8, np.random.default_rng(0), ledger, category="camel_replay")
    policy = CamelPolicy(window=5, batch_size=2, buffer=buffer)
    for position in range(5):
        policy.on_arrival(position, busy=False)
    selection = policy.select(0.0, view)
    assert selection is not None
    assert selection.positions.tolist() == [1, 3]
    np.testing.assert_allclose(selection.weight, [3 * 2 / 5, 2 * 2 / 5])  # counts rescaled to mean 1
    assert selection.cost.features == 5 and selection.extra is None  # buffer still empty
    assert policy.held == 3
    policy.after_step(selection, view)
    assert len(buffer) == 2 and ledger.held("camel_replay") == 16
    # Window {a, c, e}: d_max = |a − e| = 1.897; gains a = c = 2.38, e = 1.897 → a; then e (1.897
    # against c's 1.414). a represents a and c. It replays as many representatives as coreset points.
    selection = policy.select(1.0, view)
    assert selection is not None and selection.positions.tolist() == [0, 4]
    np.testing.assert_allclose(selection.weight, [2 * 2 / 3, 1 * 2 / 3])
    assert selection.extra is not None and selection.extra[0].shape[0] == 2
    policy.after_step(selection, view)
    # At most N left: trained on whole, unweighted, no feature pass.
    selection = policy.select(2.0, view)
    assert selection is not None and selection.positions.tolist() == [2]
    assert selection.weight is None and selection.cost.features == 0
