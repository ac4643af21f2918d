"""Reservoir replay buffer: exact algorithm R, byte accounting, capacity from a byte budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.ledger import ByteLedger
from executor.ocl.replay_buffer import ReplayBuffer, capacity_from_bytes
from planner.errors import FerretError


def reservoir_by_hand(values: list[int], capacity: int, seed: int) -> list[int]:
    """Vitter's algorithm R one item at a time, with the same random draws."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for i, v in enumerate(values):
        if len(held) < capacity:
            held.append(v)
        else:
            j = int(rng.integers(0, i + 1))
            if j < capacity:
                held[j] = v
    return held


@settings(max_examples=40, deadline=None)
@given(
    chunks=st.lists(st.integers(1, 7), min_size=1, max_size=12),
    capacity=st.integers(1, 10),
    seed=st.integers(0, 5),
)
def test_batched_adds_equal_algorithm_r(chunks, capacity, seed):
    ledger = ByteLedger()
    buffer = ReplayBuffer(capacity, bytes_per_sample=3, rng=np.random.default_rng(seed), ledger=ledger)
    values = list(range(sum(chunks)))
    start = 0
    for size in chunks:
        x = torch.tensor(values[start : start + size], dtype=torch.float32)[:, None]
        buffer.add(x, torch.tensor(values[start : start + size]))
        start += size
    expected = reservoir_by_hand(values, capacity, seed)
    assert buffer.labels.tolist() == expected
    assert len(buffer) == min(capacity, len(values)) and buffer.seen == len(values)
    assert ledger.held("replay") == 3 * len(buffer)
    x, y = buffer.get(np.arange(len(buffer)))
    assert x[:, 0].long().tolist() == y.tolist()  # inputs travel with their labels


def test_reservoir_is_uniform_over_the_stream():
    # Every one of 20 offered samples should survive in a 5-slot buffer with probability 1/4.
    kept = np.zeros(20)
    for seed in range(400):
        buffer = ReplayBuffer(5, 1, np.random.default_rng(seed))
        buffer.add(torch.zeros(20, 1), torch.arange(20))
        kept[buffer.labels.numpy()] += 1
    assert np.allclose(kept / 400, 0.25, atol=0.08)


def test_sample_draws_distinct_slots():
    buffer = ReplayBuffer(8, 1, np.random.default_rng(0))
    buffer.add(torch.arange(6.0)[:, None], torch.arange(6))
    index = buffer.sample_indices(4)
    assert len(set(index.tolist())) == 4 and index.max() < 6
    assert len(buffer.sample_indices(50)) == 6  # never more than it holds
    x, y = buffer.sample(3)
    assert x.shape == (3, 1) and set(y.tolist()) <= set(range(6))


def test_capacity_from_byte_budget():
    assert capacity_from_bytes(1024, 64) == 16
    assert capacity_from_bytes(1000, 64) == 15
    with pytest.raises(FerretError, match="holds no sample"):
        capacity_from_bytes(10, 64)


def test_shape_mismatch_is_refused():
    buffer = ReplayBuffer(4, 1, np.random.default_rng(0))
    buffer.add(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        buffer.add(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))


def test_shape_mismatch_is_refused_while_growing():
    buffer = ReplayBuffer(500, 1, np.random.default_rng(0))
    buffer.add(torch.zeros(64, 3), torch.zeros(64, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        buffer.add(torch.zeros(10, 5), torch.zeros(10, dtype=torch.long))


@pytest.mark.parametrize("policy", ["reservoir", "class-balanced"])
def test_a_buffer_loaded_from_its_state_stores_and_evicts_like_the_original(policy):
    def fed(buffer: ReplayBuffer, start: int, stop: int) -> ReplayBuffer:
        for i in range(start, stop):
            buffer.add(torch.full((1, 2), float(i)), torch.tensor([i % 3 if i % 4 else 0]))
        return buffer

    whole = fed(ReplayBuffer(6, 8, np.random.default_rng(0), policy=policy), 0, 30)
    saved = fed(ReplayBuffer(6, 8, np.random.default_rng(0), policy=policy), 0, 12).state_dict()
    fresh = ReplayBuffer(6, 8, np.random.default_rng(5), ByteLedger(), policy=policy)
    fresh.load_state_dict(saved)
    np.testing.assert_array_equal(fresh.label_array, saved["y"].numpy())  # class-wise eviction reads them
    fed(fresh, 12, 30)
    np.testing.assert_array_equal(fresh.label_array, whole.label_array)
    assert torch.equal(fresh.get(np.arange(6))[0], whole.get(np.arange(6))[0])
