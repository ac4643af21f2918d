"""Bytes held per device over simulated time: current, peak, and a bounded timeline.

The engine does not account a change when it happens: `change(t, device, ±bytes)` writes it,
packed as `(t, device, ±bytes)` (`sim.rows.CHANGE`, 24 bytes), into a byte buffer, and the
ledger folds the buffer with numpy every `LOG_CHUNK` changes (`settle`: no per-change work).
Changes must come in time order (the engine's clock only moves forward). Reading any result
settles first.

The timeline keeps, for each of at most `buckets` equal time buckets, the largest total seen in
it and each device's largest; a bucket also counts the bytes held when it begins. When the run
outgrows the buckets their width doubles and neighbours merge, so its size is flat in the
stream length and the peak survives any amount of merging. Bucket `k` is `[k·w, (k+1)·w)` with
the products in floating point, so a fold gives exactly what replaying the changes one by one
would. With `on_change` (a `mem` row per change) each change also updates a running level at
once, to report the device's bytes after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from librt.strings import BytesWriter

from sim.rows import CHANGE, write_change

LOG_CHUNK: Final = 1 << 16  # changes folded at a time
_CHANGE_DTYPE = np.dtype([("t", "<f8"), ("device", "<i8"), ("delta", "<i8")])
assert _CHANGE_DTYPE.itemsize == CHANGE.size
_LOG_BYTES: Final = LOG_CHUNK * CHANGE.size


class MemoryLedger:
    """Bytes held per device during one simulation: current, per-device and total peak, and a timeline.

    Changes must arrive in time order; no device may go below 0 bytes (an `AssertionError` says which).
    The timeline keeps at most `buckets` time buckets, doubling their width as the run grows, and no
    merge loses a peak. Owned by the engine; `on_change` reports every level change.
    """

    def __init__(
        self,
        num_devices: int,
        horizon_s: float,
        buckets: int = 1024,
        on_change: Callable[[int, int, float], None] | None = None,
    ) -> None:
        if buckets < 2 or buckets % 2:
            raise ValueError(f"memory ledger: buckets must be an even number ≥ 2, got {buckets}")
        self.buckets = buckets
        self._width = max(horizon_s, 1e-9) / buckets
        self._current = np.zeros(num_devices, dtype=np.int64)
        self._total = 0
        # A bucket row is [total peak, device 0 peak, ...]; rows 0..k-1 are closed, `_open` is k.
        self._closed = np.zeros((0, num_devices + 1), dtype=np.int64)
        self._open = np.zeros(num_devices + 1, dtype=np.int64)
        self._pending = BytesWriter()  # the changes not folded yet, packed
        self.on_change = on_change
        self._level = [0] * num_devices  # running bytes per device, kept only for `on_change`

    def change(self, t: float, device: int, delta: int) -> None:
        """`device` holds `delta` more bytes (fewer if negative) from time `t` on."""
        if self.on_change is not None:
            if not delta:
                return
            level = self._level[device] + delta
            self._level[device] = level
            self.on_change(device, level, t)
        pending = self._pending
        write_change(pending, t, device, delta)
        if len(pending) >= _LOG_BYTES:
            self.settle()

    def alloc(self, device: int, nbytes: int, t: float) -> None:
        self.change(t, device, nbytes)
        self.settle()

    def free(self, device: int, nbytes: int, t: float) -> None:
        self.change(t, device, -nbytes)
        self.settle()

    # ------------------------------------------------------------------ results
    @property
    def current(self) -> list[int]:
        self.settle()
        return self._current.tolist()

    @property
    def total(self) -> int:
        self.settle()
        return self._total

    @property
    def width(self) -> float:
        self.settle()
        return self._width

    @property
    def peak(self) -> list[int]:
        """Each device's peak bytes: no bucket merge loses a maximum."""
        return self._rows()[:, 1:].max(axis=0).tolist()

    @property
    def total_peak(self) -> int:
        return int(self._rows()[:, 0].max())

    def timeline(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bucket start times, peak total bytes per bucket, peak bytes per bucket and device)."""
        rows = self._rows()
        return np.arange(len(rows)) * self._width, rows[:, 0], rows[:, 1:]

    def _rows(self) -> np.ndarray:
        self.settle()
        return np.vstack([self._closed, self._open])

    # ------------------------------------------------------------------ folding
    def settle(self) -> None:
        """Fold the logged changes into the current bytes, the peaks and the timeline."""
        if not len(self._pending):
            return
        log = np.frombuffer(self._pending.getvalue(), dtype=_CHANGE_DTYPE)
        self._pending.truncate(0)
        log = log[log["delta"] != 0]
        if len(log):
            self._fold(*(np.ascontiguousarray(log[name]) for name in ("t", "device", "delta")))

    def _fold(self, t: np.ndarray, device: np.ndarray, delta: np.ndarray) -> None:
        devices = len(self._current)
        # Levels after each change: the total, and the changed device's bytes (per-device running
        # sums over the changes sorted by device, time order kept within each).
        total_after = self._total + np.cumsum(delta)
        # numpy sorts integers of 16 bits or fewer stably by radix: 4× faster than int64's timsort.
        order = np.argsort(device.astype(np.uint16) if devices <= 1 << 16 else device, kind="stable")
        by_device = device[order]
        starts = np.flatnonzero(np.r_[True, by_device[1:] != by_device[:-1]])
        ends = np.r_[starts[1:], len(order)]
        running = np.cumsum(delta[order])
        base = self._current[by_device[starts]] - (running[starts] - delta[order][starts])
        held_after = np.empty_like(delta)
        held_after[order] = running + np.repeat(base, ends - starts)
        if (held_after < 0).any():
            i = int(np.argmax(held_after < 0))
            raise AssertionError(
                f"memory ledger: device {device[i]} would hold {held_after[i]} B after freeing {-delta[i]} B"
            )
        # Double the width until the last change falls in a bucket (merging what is there).
        k = len(self._closed)
        while _bucket(t[-1:], self._width)[0] >= self.buckets:
            k = self._coarsen()
        b = _bucket(t, self._width)
        last = int(b[-1])
        # Every bucket from the open one to the last touched: its level when it begins, then its changes.
        rows = np.empty((last - k + 1, devices + 1), dtype=np.int64)
        rows[0] = self._open
        if last > k:
            before = np.searchsorted(b, np.arange(k + 1, last + 1), side="left") - 1  # last change before it
            rows[1:, 0] = np.where(before >= 0, total_after[np.maximum(before, 0)], self._total)
            rows[1:, 1:] = self._current
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                mine = order[s:e]  # this device's changes, in time order
                at = np.searchsorted(mine, before, side="right") - 1  # its last one before the bucket
                d = int(by_device[s]) + 1
                rows[1:, d] = np.where(at >= 0, held_after[mine[np.maximum(at, 0)]], rows[1:, d])
        np.maximum.at(rows[:, 0], b - k, total_after)
        np.maximum.at(rows.reshape(-1), (b - k) * (devices + 1) + device + 1, held_after)
        self._closed = np.vstack([self._closed, rows[:-1]])
        self._open = rows[-1]
        self._total = int(total_after[-1])
        self._current[by_device[starts]] = held_after[order[ends - 1]]

    def _coarsen(self) -> int:
        """Double the bucket width: merge closed buckets pairwise (an odd last one joins the open
        one); returns the open bucket's new index."""
        rows = self._closed
        if len(rows) % 2:
            self._open = np.maximum(self._open, rows[-1])
            rows = rows[:-1]
        self._closed = np.maximum(rows[0::2], rows[1::2])
        self._width *= 2
        return len(self._closed)


def _bucket(t: np.ndarray, width: float) -> np.ndarray:
    """Index `k` with `k·w ≤ t < (k+1)·w`, the products in floating point as the buckets' ends are."""
    k = np.floor(t / width)
    k -= k * width > t
    k += (k + 1) * width <= t
    return k.astype(np.int64)
