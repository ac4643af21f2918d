"""A replay memory sized in samples or in bytes, with a reservoir or a class-balanced policy.

`reservoir` (Vitter's algorithm R) keeps a uniform random subset of everything offered so far:
the `i`-th sample offered (0-based) enters a full buffer with probability `capacity / (i + 1)`,
replacing a uniformly chosen slot. `class-balanced` (aL-SAR, SPEC §10.3) always admits the
sample; a full buffer evicts a uniformly chosen sample of the largest class, counting the
incoming sample in its class (ties: the lowest label among the classes it holds). `add` returns the slots it wrote, so a
sampler that keeps per-slot statistics (use counts) can reset them. `sample_indices` draws
uniformly without replacement; other draws live in `executor.ocl.samplers`.

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

MEMORY_POLICIES = ("reservoir", "class-balanced")


def capacity_from_bytes(budget_bytes: int, bytes_per_sample: int) -> int:
    """How many samples a byte budget holds (labels ride along in the sample's record)."""
    if bytes_per_sample <= 0:
        raise ValueError(f"bytes per sample must be positive, got {bytes_per_sample}")
    capacity = budget_bytes // bytes_per_sample
    if capacity < 1:
        raise FerretError(f"replay budget of {budget_bytes} B holds no sample (one sample takes {bytes_per_sample} B)")
    return capacity


class ReplayBuffer:
    """A replay memory of at most `capacity` samples under the `reservoir` or `class-balanced` policy.

    Each stored sample costs `bytes_per_sample` in the ledger's `category`; `add` returns the slots it
    wrote. Bad capacity or policy: `ValueError`. See the module docstring.
    """

    def __init__(
        self,
        capacity: int,
        bytes_per_sample: int,
        rng: np.random.Generator,
        ledger: ByteLedger | None = None,
        category: str = "replay",
        policy: str = "reservoir",
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be ≥ 1 sample, got {capacity}")
        if policy not in MEMORY_POLICIES:
            raise ValueError(f"unknown memory policy {policy!r}; choose one of {', '.join(MEMORY_POLICIES)}")
        self.capacity = capacity
        self.policy = policy
        self.bytes_per_sample = bytes_per_sample
        self.seen = 0
        self._rng = rng
        self._ledger = ledger
        self._category = category
        self._size = 0
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None
        self._labels = np.zeros(0, dtype=np.int64)  # host copy of the labels, for class-wise policies

    def __len__(self) -> int:
        return self._size

    @property
    def stored_bytes(self) -> int:
        return self._size * self.bytes_per_sample

    @property
    def labels(self) -> torch.Tensor:
        """Labels of the stored samples, in slot order."""
        return self._y[: self._size] if self._y is not None else torch.zeros(0, dtype=torch.int64)

    @property
    def label_array(self) -> np.ndarray:
        """The same labels as a host array (no copy from the device)."""
        return self._labels[: self._size]

    def add(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Offer each row of `(x, y)` to the memory, in order; return the slots written, in order
        (a slot twice if two rows landed there)."""
        rows = x.shape[0]
        if rows == 0:
            return np.zeros(0, dtype=np.int64)
        self._ensure_storage(x, y, rows)
        assert self._x is not None and self._y is not None
        x, y = x.detach(), y.detach()
        labels = y.cpu().numpy().astype(np.int64)
        written: list[int] = []
        free = min(self.capacity - self._size, rows)
        if free > 0:
            self._x[self._size : self._size + free] = x[:free]
            self._y[self._size : self._size + free] = y[:free]
            self._labels[self._size : self._size + free] = labels[:free]
            written.extend(range(self._size, self._size + free))
            self._size += free
        if free < rows:
            slots = self._reservoir_slots(free, rows) if self.policy == "reservoir" else None
            for r in range(free, rows):
                slot = self._evict_slot(int(labels[r])) if slots is None else int(slots[r - free])
                if slot < self.capacity:
                    self._x[slot] = x[r]
                    self._y[slot] = y[r]
                    self._labels[slot] = labels[r]
                    written.append(slot)
        self.seen += rows
        if self._ledger is not None:
            self._ledger.set(self._category, self.stored_bytes)
        return np.asarray(written, dtype=np.int64)

    def _reservoir_slots(self, free: int, rows: int) -> np.ndarray:
        # Row r is the (seen + r)-th sample offered; it replaces slot j ~ U[0, seen + r] if j < capacity.
        offered = self.seen + np.arange(free, rows)
        return self._rng.integers(0, offered + 1)

    def _evict_slot(self, incoming: int) -> int:
        """A uniformly chosen slot of the largest class, the incoming sample counted in its class."""
        stored = np.bincount(self.label_array, minlength=incoming + 1)
        counts = stored.copy()
        counts[incoming] += 1
        # The largest class that has a stored sample (a new class ties the others at 1 in a tiny memory).
        largest = int(np.flatnonzero((counts == counts.max()) & (stored > 0))[0])
        return int(self._rng.choice(np.flatnonzero(self.label_array == largest)))

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

    def state_dict(self) -> dict[str, Any]:
        """Everything the buffer's future depends on: contents, offers so far, its generator."""
        return {
            "seen": self.seen,
            "x": None if self._x is None else self._x[: self._size].clone(),
            "y": None if self._y is None else self._y[: self._size].clone(),
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        x, y = state["x"], state["y"]
        self._x = self._y = None
        self._size = 0
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape[0]:
            self._ensure_storage(x, y, x.shape[0])
            assert self._x is not None and self._y is not None
            self._x[: x.shape[0]] = x
            self._y[: y.shape[0]] = y
            self._labels[: y.shape[0]] = y.cpu().numpy()  # the class-wise policies and samplers read them
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
        new_labels = np.zeros(allocated, dtype=np.int64)
        if self._x is not None and self._y is not None:
            new_x[: self._size] = self._x[: self._size]
            new_y[: self._size] = self._y[: self._size]
            new_labels[: self._size] = self._labels[: self._size]
        self._x, self._y, self._labels = new_x, new_y, new_labels
