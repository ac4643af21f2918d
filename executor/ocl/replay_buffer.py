"""A reservoir replay buffer sized in samples or in bytes.

Reservoir sampling (Vitter's algorithm R) keeps a uniform random subset of everything offered
so far: the `i`-th sample offered (0-based) enters a full buffer with probability
`capacity / (i + 1)`, replacing a uniformly chosen slot. Draws for replay are uniform without
replacement.

Byte accounting: each stored sample costs `bytes_per_sample` — the size of the sample at its
stored dtype (`Dataset.stored_bytes_per_sample`, e.g. uint8 pixels), which is what aL-SAR's
memory budget counts (SPEC §10.1). The in-process copy is kept at the model's dtype for speed;
storage grows with the content, so an unused capacity costs nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from executor.ledger import ByteLedger
from planner.errors import FerretError


def capacity_from_bytes(budget_bytes: int, bytes_per_sample: int) -> int:
    """How many samples a byte budget holds (labels ride along in the sample's record)."""
    if bytes_per_sample <= 0:
        raise ValueError(f"bytes per sample must be positive, got {bytes_per_sample}")
    capacity = budget_bytes // bytes_per_sample
    if capacity < 1:
        raise FerretError(f"replay budget of {budget_bytes} B holds no sample (one sample takes {bytes_per_sample} B)")
    return capacity


class ReplayBuffer:
    def __init__(
        self,
        capacity: int,
        bytes_per_sample: int,
        rng: np.random.Generator,
        ledger: ByteLedger | None = None,
        category: str = "replay",
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be ≥ 1 sample, got {capacity}")
        self.capacity = capacity
        self.bytes_per_sample = bytes_per_sample
        self.seen = 0
        self._rng = rng
        self._ledger = ledger
        self._category = category
        self._size = 0
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None

    def __len__(self) -> int:
        return self._size

    @property
    def stored_bytes(self) -> int:
        return self._size * self.bytes_per_sample

    @property
    def labels(self) -> torch.Tensor:
        """Labels of the stored samples, in slot order."""
        return self._y[: self._size] if self._y is not None else torch.zeros(0, dtype=torch.int64)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Offer each row of `(x, y)` to the reservoir, in order."""
        rows = x.shape[0]
        if rows == 0:
            return
        self._ensure_storage(x, y, rows)
        assert self._x is not None and self._y is not None
        x, y = x.detach(), y.detach()
        free = min(self.capacity - self._size, rows)
        if free > 0:
            self._x[self._size : self._size + free] = x[:free]
            self._y[self._size : self._size + free] = y[:free]
            self._size += free
        if free < rows:
            # Row r is the (seen + r)-th sample offered; it replaces slot j ~ U[0, seen + r] if j < capacity.
            offered = self.seen + np.arange(free, rows)
            slots = self._rng.integers(0, offered + 1)
            for r, slot in zip(range(free, rows), slots.tolist(), strict=True):
                if slot < self.capacity:
                    self._x[slot] = x[r]
                    self._y[slot] = y[r]
        self.seen += rows
        if self._ledger is not None:
            self._ledger.set(self._category, self.stored_bytes)

    def sample_indices(self, k: int) -> np.ndarray:
        """`min(k, len)` distinct slots, uniformly at random."""
        k = min(k, self._size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        return np.sort(self._rng.choice(self._size, size=k, replace=False))

    def get(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._x is not None and self._y is not None, "get() on an empty buffer"
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64)).to(self._x.device)
        return self._x.index_select(0, index), self._y.index_select(0, index)

    def sample(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.get(self.sample_indices(k))

    def state(self) -> dict[str, Any]:
        """Everything the buffer's future depends on: contents, offers so far, its generator."""
        return {
            "seen": self.seen,
            "x": None if self._x is None else self._x[: self._size].clone(),
            "y": None if self._y is None else self._y[: self._size].clone(),
            "rng": self._rng.bit_generator.state,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        x, y = state["x"], state["y"]
        self._x = self._y = None
        self._size = 0
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape[0]:
            self._ensure_storage(x, y, x.shape[0])
            assert self._x is not None and self._y is not None
            self._x[: x.shape[0]] = x
            self._y[: y.shape[0]] = y
            self._size = x.shape[0]
        self.seen = int(state["seen"])
        self._rng.bit_generator.state = state["rng"]
        if self._ledger is not None:
            self._ledger.set(self._category, self.stored_bytes)

    def _ensure_storage(self, x: torch.Tensor, y: torch.Tensor, rows: int) -> None:
        if self._x is not None and self._x.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"replay buffer holds samples of shape {tuple(self._x.shape[1:])}, got {tuple(x.shape[1:])}"
            )
        needed = min(self.capacity, self._size + rows)
        if self._x is not None and self._x.shape[0] >= needed:
            return
        # Grow geometrically so a long stream costs O(log capacity) copies.
        allocated = min(self.capacity, max(needed, 2 * (0 if self._x is None else self._x.shape[0]), 64))
        new_x = torch.empty((allocated, *x.shape[1:]), dtype=x.dtype, device=x.device)
        new_y = torch.empty(allocated, dtype=y.dtype, device=y.device)
        if self._x is not None and self._y is not None:
            new_x[: self._size] = self._x[: self._size]
            new_y[: self._size] = self._y[: self._size]
        self._x, self._y = new_x, new_y
