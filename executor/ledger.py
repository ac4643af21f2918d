"""Exact byte accounting of what a learner or stage stores, by category, with peaks.

Categories are free-form strings ("weights", "activations", "optimizer", "replay", ...).
Freeing more than was allocated is a bug in the caller and raises at once.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn


class ByteLedger:
    """Bytes stored per category, with the total, its peak and each category's peak.

    `alloc` of a negative size (`ValueError`) or `free` of more than a category holds (`RuntimeError`)
    raises at once.
    """

    def __init__(self) -> None:
        self._current: defaultdict[str, int] = defaultdict(int)
        self._peak_by_category: defaultdict[str, int] = defaultdict(int)
        self._total = 0
        self._peak = 0

    def alloc(self, category: str, nbytes: int) -> None:
        if nbytes < 0:
            raise ValueError(f"ledger: cannot allocate a negative size ({nbytes}) for {category!r}")
        held = self._current[category] + nbytes  # (runs several times per pipeline op: no max() calls)
        self._current[category] = held
        total = self._total + nbytes
        self._total = total
        peaks = self._peak_by_category
        if held > peaks[category]:
            peaks[category] = held
        if total > self._peak:
            self._peak = total

    def free(self, category: str, nbytes: int) -> None:
        held = self._current[category]
        if nbytes < 0 or nbytes > held:
            raise RuntimeError(f"ledger: freeing {nbytes} B of {category!r} but only {held} B are held")
        self._current[category] = held - nbytes
        self._total -= nbytes

    def set(self, category: str, nbytes: int) -> None:
        """Make `category` hold exactly `nbytes` (for state whose size is re-measured)."""
        held = self._current[category]
        if nbytes >= held:
            self.alloc(category, nbytes - held)
        else:
            self.free(category, held - nbytes)

    @property
    def current(self) -> int:
        return self._total

    @property
    def peak(self) -> int:
        return self._peak

    def held(self, category: str) -> int:
        return self._current.get(category, 0)

    def peak_of(self, category: str) -> int:
        return self._peak_by_category.get(category, 0)

    def snapshot(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self._current.items()) if v}

    def peaks(self) -> dict[str, int]:
        """Peak bytes of every category that ever held any (categories peak at different times)."""
        return {k: v for k, v in sorted(self._peak_by_category.items()) if v}


def tensor_bytes(*tensors: torch.Tensor | None) -> int:
    total = 0  # a loop, not sum() over a generator: pipeline executors call it on every datum
    for t in tensors:
        if t is not None:
            total += t.numel() * t.element_size()
    return total


def module_bytes(module: nn.Module) -> int:
    """Parameters plus buffers (e.g. BatchNorm running statistics)."""
    return tensor_bytes(*module.parameters()) + tensor_bytes(*module.buffers())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizer's per-parameter state (momentum, Adam moments)."""
    total = 0
    for state in optimizer.state.values():
        total += sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor))
    return total
