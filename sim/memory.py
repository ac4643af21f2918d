"""Bytes held per device over simulated time: current, peak, and a bounded timeline.

The timeline keeps, for each of at most `buckets` equal time buckets, the largest total seen
in it; when the run outgrows the buckets their width doubles and neighbours merge. Its size is
therefore flat in the stream length, and the peak survives any amount of merging. The common
path of `alloc`/`free` is a few integer operations: only crossing into a new bucket costs more.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class MemoryLedger:
    def __init__(self, num_devices: int, horizon_s: float, buckets: int = 1024) -> None:
        if buckets < 2 or buckets % 2:
            raise ValueError(f"memory ledger: buckets must be an even number ≥ 2, got {buckets}")
        self.current = [0] * num_devices
        self.peak = [0] * num_devices
        self.total = 0
        self.total_peak = 0
        self.buckets = buckets
        self.width = max(horizon_s, 1e-9) / buckets
        self._peaks: list[int] = []  # closed buckets' peaks
        self._bucket_end = self.width  # end of the open bucket, index len(self._peaks)
        self._open_peak = 0
        self.on_change: Callable[[int, int, float], None] | None = None

    def alloc(self, device: int, nbytes: int, t: float) -> None:
        if nbytes == 0:
            return
        held = self.current[device] + nbytes
        self.current[device] = held
        if held > self.peak[device]:
            self.peak[device] = held
        if t >= self._bucket_end:
            self._roll(t)
        total = self.total + nbytes
        self.total = total
        if total > self._open_peak:
            self._open_peak = total
            if total > self.total_peak:
                self.total_peak = total
        if self.on_change is not None:
            self.on_change(device, held, t)

    def free(self, device: int, nbytes: int, t: float) -> None:
        if nbytes == 0:
            return
        held = self.current[device] - nbytes
        if held < 0:
            raise AssertionError(f"memory ledger: device {device} would hold {held} B after freeing {nbytes} B")
        self.current[device] = held
        if t >= self._bucket_end:
            self._roll(t)
        self.total -= nbytes
        if self.on_change is not None:
            self.on_change(device, held, t)

    def _roll(self, t: float) -> None:
        """Close the open bucket and any empty ones before `t` (they held the current total)."""
        self._peaks.append(self._open_peak)
        self._open_peak = self.total
        while True:
            if len(self._peaks) >= self.buckets:
                self._coarsen()
            end = (len(self._peaks) + 1) * self.width
            if t < end:
                break
            self._peaks.append(self.total)
        self._bucket_end = end

    def _coarsen(self) -> None:
        """Double the bucket width: merge closed buckets pairwise (an odd last one joins the open one)."""
        peaks = self._peaks
        if len(peaks) % 2:
            self._open_peak = max(self._open_peak, peaks[-1])
        self._peaks = [max(peaks[2 * i], peaks[2 * i + 1]) for i in range(len(peaks) // 2)]
        self.width *= 2

    def timeline(self) -> tuple[np.ndarray, np.ndarray]:
        """(bucket start times, peak total bytes in each bucket) up to the last change."""
        peaks = [*self._peaks, self._open_peak]
        return np.arange(len(peaks)) * self.width, np.asarray(peaks, dtype=np.int64)
