"""Weight versions of one stage with reference counts (weight stashing, PipeDream).

Version ids count the stage's optimizer steps: version `v` is the weights after `v` updates,
so the staleness of a gradient computed at `v` and applied at `c` is `c - v`.

A version lives while it is current or while an in-flight datum that ran its forward on it
still holds a reference. With `keep_chain` (Iter-Fisher) the store also keeps every version
between the oldest referenced one and the current one, because Iter-Fisher walks that chain
one step at a time; versions are then freed from the old end only. An update steps the current
flat tensor in place when nothing needs the current values any more, and steps a fresh copy
otherwise (copy-on-write), so a stage holds exactly the versions its in-flight data need.
"""

from __future__ import annotations

import torch
from torch import nn

from executor.stage.layout import ParamLayout, attach_gradients
from executor.stage.tally import Tally

WEIGHTS = "weights"


class Version:
    """One set of stage weights: a flat tensor, its parameter aliases and 1-D chunks, a ref count."""

    __slots__ = ("chunks", "flat", "id", "params", "refs")

    def __init__(
        self, version_id: int, flat: torch.Tensor, params: tuple[nn.Parameter, ...], chunks: list[torch.Tensor]
    ) -> None:
        self.id = version_id
        self.flat = flat
        self.params = params  # shaped, installed in the modules, differentiated against
        self.chunks = chunks  # 1-D, what the optimizer steps
        self.refs = 0

    def __repr__(self) -> str:
        return f"Version(id={self.id}, refs={self.refs})"


class VersionStore:
    """One stage's live weight versions with reference counts (weight stashing).

    Version `v` is the weights after `v` updates; a version is freed once neither the current weights
    nor an in-flight datum (nor, with `keep_chain`, Iter-Fisher's chain) needs it.
    """

    def __init__(self, layout: ParamLayout, flat: torch.Tensor, tally: Tally, keep_chain: bool) -> None:
        self._layout = layout
        self._tally = tally
        self._grad_views: list[torch.Tensor] | None = None
        self._nbytes = flat.numel() * flat.element_size()
        self.keep_chain = keep_chain
        first = self._version(0, flat)
        layout.install(first.params)
        self._live: dict[int, Version] = {0: first}
        self._current = first
        self._spare: Version | None = None
        tally.alloc(WEIGHTS, self._nbytes)

    @property
    def current(self) -> Version:
        return self._current

    @property
    def held(self) -> int:
        """Number of versions physically held (current included)."""
        return len(self._live)

    @property
    def held_ids(self) -> tuple[int, ...]:
        return tuple(self._live)

    def attach_gradients(self, grad: torch.Tensor) -> None:
        """From now on every version's parameters accumulate their `.grad` into flat `grad`."""
        self._grad_views = self._layout.views(grad)
        for version in self._live.values():
            attach_gradients(version.params, self._grad_views)
        if self._spare is not None:
            attach_gradients(self._spare.params, self._grad_views)

    def version(self, version_id: int) -> Version:
        """A live version by id (KeyError when it has been freed)."""
        return self._live[version_id]

    def acquire(self) -> Version:
        """Stash the current version for an in-flight datum."""
        version = self._current
        version.refs += 1
        return version

    def release(self, version: Version) -> None:
        """The datum that stashed `version` no longer needs it."""
        if version.refs <= 0 or self._live.get(version.id) is not version:
            raise RuntimeError(f"release of {version!r}, which holds no reference in this store")
        version.refs -= 1
        if version.refs == 0:
            self._collect(version)

    def chain(self, version: Version) -> list[Version]:
        """Versions `version.id .. current.id`, oldest first (needs `keep_chain`)."""
        if not self.keep_chain:
            raise RuntimeError("the version chain is only kept with keep_chain=True (Iter-Fisher)")
        return [self._live[i] for i in range(version.id, self._current.id + 1)]

    def advance(self) -> tuple[Version, bool]:
        """Make the next version current and return it with whether it is a fresh copy.

        The caller steps the returned version's flat tensor in place. When the old current
        version is still needed (stashed by an in-flight datum, or a link of a kept chain)
        its values are copied first and the copy becomes current; otherwise the flat tensor
        is reused and only the id moves on.
        """
        old = self._current
        needed = old.refs > 0 or (self.keep_chain and len(self._live) > 1)
        if not needed:
            del self._live[old.id]
            old.id += 1
            self._live[old.id] = old
            return old, False
        self._tally.alloc(WEIGHTS, self._nbytes)
        new = self._spare
        if new is None:
            new = self._version(old.id + 1, old.flat.clone())
        else:  # recycle the version dropped earlier in this op: no allocation, no new parameters
            self._spare = None
            new.flat.copy_(old.flat)
            new.id = old.id + 1
        self._layout.install(new.params)
        self._live[new.id] = new
        self._current = new
        return new, True

    def trim(self) -> None:
        """Let go of the version kept for recycling; call at the end of every op so that what
        the store holds between ops is exactly what the ledger says."""
        self._spare = None

    def use(self, version: Version) -> None:
        """Install `version` in the modules (for a recomputation); `use(current)` restores."""
        self._layout.install(version.params)

    def _version(self, version_id: int, flat: torch.Tensor) -> Version:
        return Version(version_id, flat, self._layout.parameters(flat, self._grad_views), self._layout.chunks(flat))

    def _collect(self, released: Version) -> None:
        if self.keep_chain:
            while True:
                oldest = next(iter(self._live.values()))
                if oldest is self._current or oldest.refs > 0:
                    return
                self._drop(oldest)
        elif released is not self._current:
            self._drop(released)

    def _drop(self, version: Version) -> None:
        del self._live[version.id]
        self._tally.free(WEIGHTS, self._nbytes)
        self._spare = version  # an update later in the same op may reuse its memory
