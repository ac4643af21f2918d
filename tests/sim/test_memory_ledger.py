"""The memory ledger: exact peaks and a bounded timeline that never loses the peak."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.memory import MemoryLedger

steps = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 500), st.booleans(), st.floats(0.0, 3.0)), min_size=1, max_size=200
)


@given(steps, st.sampled_from([2, 4, 16]), st.floats(0.01, 10.0))
def test_peaks_and_timeline_match_a_plain_replay(ops, buckets, horizon):
    ledger = MemoryLedger(3, horizon, buckets=buckets)
    held = [0, 0, 0]
    peaks = [0, 0, 0]
    total_peak = 0
    t = 0.0
    last_t = 0.0
    for device, nbytes, allocate, gap in ops:
        t += gap
        if allocate:
            ledger.alloc(device, nbytes, t)
            held[device] += nbytes
        else:
            nbytes = min(nbytes, held[device])
            ledger.free(device, nbytes, t)
            held[device] -= nbytes
        if nbytes:
            last_t = t
        peaks[device] = max(peaks[device], held[device])
        total_peak = max(total_peak, sum(held))
    assert ledger.current == held
    assert ledger.peak == peaks
    assert ledger.total == sum(held)
    assert ledger.total_peak == total_peak
    starts, values, per_device = ledger.timeline()
    assert len(values) <= buckets
    assert values.max(initial=0) == total_peak
    assert per_device.shape == (len(values), 3)
    assert per_device.max(axis=0).tolist() == peaks
    assert np.all(per_device.sum(axis=1) >= values)  # devices peak at different moments within a bucket
    assert starts[-1] <= last_t < starts[-1] + 2 * ledger.width or last_t == 0.0


def test_timeline_buckets_hold_the_peak_of_their_interval():
    ledger = MemoryLedger(2, horizon_s=4.0, buckets=4)  # buckets of 1 s
    ledger.alloc(0, 10, 0.2)
    ledger.alloc(1, 5, 0.5)
    ledger.free(0, 10, 0.6)
    ledger.free(1, 5, 0.7)
    ledger.alloc(1, 3, 2.5)
    starts, values, per_device = ledger.timeline()
    assert starts.tolist() == [0.0, 1.0, 2.0]
    assert values.tolist() == [15, 0, 3]
    assert per_device.tolist() == [[10, 5], [0, 0], [0, 3]]
    ledger.alloc(0, 1, 9.0)  # past the horizon: buckets double to 2 s, then 4 s
    starts, values, per_device = ledger.timeline()
    assert ledger.width == 4.0
    assert values.tolist() == [15, 3, 4]
    assert per_device.tolist() == [[10, 5], [0, 3], [1, 3]]


def test_freeing_more_than_a_device_holds_is_a_bug():
    ledger = MemoryLedger(2, 1.0)
    ledger.alloc(0, 10, 0.0)
    with pytest.raises(AssertionError, match="device 1 would hold -1 B"):
        ledger.free(1, 1, 0.1)


class RollingLedger:
    """The ledger's meaning, one change at a time (the twin's ledger before it folded a log)."""

    def __init__(self, devices: int, horizon: float, buckets: int) -> None:
        self.current, self.total, self.buckets = [0] * devices, 0, buckets
        self.width = max(horizon, 1e-9) / buckets
        self.closed: list[list[int]] = []
        self.open = [0] * (devices + 1)
        self.end = self.width

    def change(self, device: int, delta: int, t: float) -> None:
        if not delta:
            return
        if t >= self.end:
            now = [self.total, *self.current]
            self.closed.append(self.open)
            self.open = now
            while True:
                if len(self.closed) >= self.buckets:
                    rows = self.closed
                    self.closed = [
                        [max(a, b) for a, b in zip(rows[2 * i], rows[2 * i + 1], strict=True)]
                        for i in range(len(rows) // 2)
                    ]
                    self.width *= 2
                self.end = (len(self.closed) + 1) * self.width
                if t < self.end:
                    break
                self.closed.append(list(now))
        self.current[device] += delta
        self.total += delta
        self.open[device + 1] = max(self.open[device + 1], self.current[device])
        self.open[0] = max(self.open[0], self.total)


@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(-300, 500), st.sampled_from([0.0, 0.0, 0.01, 0.25, 1.0, 7.0])),
        min_size=1,
        max_size=400,
    ),
    st.sampled_from([2, 4, 8]),
    st.floats(0.05, 5.0),
    st.integers(1, 50),
)
def test_folding_the_log_in_any_chunks_equals_applying_each_change(changes, buckets, horizon, chunk):
    ledger = MemoryLedger(3, horizon, buckets=buckets)
    reference = RollingLedger(3, horizon, buckets)
    t = 0.0
    for i, (device, delta, gap) in enumerate(changes):
        t += gap
        delta = max(delta, -reference.current[device])  # never below zero
        ledger.change(t, device, delta)
        reference.change(device, delta, t)
        if i % chunk == 0:
            ledger.settle()
    _, values, per_device = ledger.timeline()
    rows = np.asarray([*reference.closed, reference.open])
    assert ledger.width == reference.width
    assert values.tolist() == rows[:, 0].tolist()
    assert per_device.tolist() == rows[:, 1:].tolist()
    assert ledger.current == reference.current and ledger.total == reference.total
