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
        # A bucket is [total peak, device 0 peak, device 1 peak, ...]; the open one is still filling.
        self._closed: list[list[int]] = []
        self._open = [0] * (num_devices + 1)
        self._bucket_end = self.width  # end of the open bucket, index len(self._closed)
        self.on_change: Callable[[int, int, float], None] | None = None

    def alloc(self, device: int, nbytes: int, t: float) -> None:
        if nbytes == 0:
            return
        if t >= self._bucket_end:
            self._roll(t)
        held = self.current[device] + nbytes
        self.current[device] = held
        if held > self.peak[device]:
            self.peak[device] = held
        bucket = self._open
        if held > bucket[device + 1]:
            bucket[device + 1] = held
        total = self.total + nbytes
        self.total = total
        if total > bucket[0]:
            bucket[0] = total
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
        if t >= self._bucket_end:
            self._roll(t)
        self.current[device] = held
        self.total -= nbytes
        if self.on_change is not None:
            self.on_change(device, held, t)

    def _roll(self, t: float) -> None:
        """Close the open bucket and any empty ones before `t` (they held the current bytes)."""
        now = [self.total, *self.current]
        self._closed.append(self._open)
        self._open = now
        while True:
            if len(self._closed) >= self.buckets:
                self._coarsen()
            end = (len(self._closed) + 1) * self.width
            if t < end:
                break
            self._closed.append(list(now))
        self._bucket_end = end

    def _coarsen(self) -> None:
        """Double the bucket width: merge closed buckets pairwise (an odd last one joins the open one)."""
        rows = self._closed
        if len(rows) % 2:
            self._open = [max(a, b) for a, b in zip(self._open, rows[-1], strict=True)]
        self._closed = [
            [max(a, b) for a, b in zip(rows[2 * i], rows[2 * i + 1], strict=True)] for i in range(len(rows) // 2)
        ]
        self.width *= 2

    def timeline(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bucket start times, peak total bytes per bucket, peak bytes per bucket and device)."""
        rows = np.asarray([*self._closed, self._open], dtype=np.int64)
        return np.arange(len(rows)) * self.width, rows[:, 0], rows[:, 1:]
