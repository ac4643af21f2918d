"""Per-stage byte tally that forwards every change to a (possibly shared) `ByteLedger`.

Several stages may share one ledger so that its peak is the peak of their *sum*; the tally
keeps what this stage alone holds, by category, so a stage can still be inspected on its own.
"""

from __future__ import annotations

from executor.ledger import ByteLedger


class Tally:
    """What one stage holds, by category, while every change also goes to a shared `ByteLedger`.

    Freeing more than the stage holds raises `RuntimeError`.
    """

    __slots__ = ("_held", "ledger")

    def __init__(self, ledger: ByteLedger) -> None:
        self.ledger = ledger
        self._held: dict[str, int] = {}

    def alloc(self, category: str, nbytes: int) -> None:
        self.ledger.alloc(category, nbytes)
        self._held[category] = self._held.get(category, 0) + nbytes

    def free(self, category: str, nbytes: int) -> None:
        held = self._held.get(category, 0)
        if nbytes > held:
            raise RuntimeError(f"stage tally: freeing {nbytes} B of {category!r} but the stage holds {held} B")
        self.ledger.free(category, nbytes)
        self._held[category] = held - nbytes

    def resize(self, category: str, nbytes: int) -> None:
        """Make this stage hold exactly `nbytes` of `category` (for re-measured state)."""
        held = self._held.get(category, 0)
        if nbytes > held:
            self.alloc(category, nbytes - held)
        elif nbytes < held:
            self.free(category, held - nbytes)

    def held(self, category: str) -> int:
        return self._held.get(category, 0)

    def snapshot(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self._held.items()) if v}
