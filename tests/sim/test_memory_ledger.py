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
