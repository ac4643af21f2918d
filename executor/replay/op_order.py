"""The order a datum's compute ops must come in, for an executor that follows a trace file.

Every datum runs its forward through stages 0, 1, …, P-1, then its backward down from P-1 (to
the lowest stage it trains, where the executor calls `finish`); a stage's recomputation comes
after the last forward and before that stage's backward. A row out of that order (a trace
edited by hand, rows reordered by a changed time, a stage renamed) would otherwise reach the
stage math as a tensor of the wrong shape or a forward run twice; `take` refuses it first, with
`FerretError` saying which op the datum expected. Only the replay executor uses it: a rank of
the distributed lockstep driver sees the rows of its own stages only.
"""

from __future__ import annotations

from planner.errors import FerretError
from sim.trace import TraceRow


class OpOrder:
    """Per datum in flight, the position of its next compute op (module docstring)."""

    def __init__(self, num_stages: int) -> None:
        self.P = num_stages
        self._next: dict[int, int] = {}  # sample → forwards done, plus backwards done past P

    def take(self, row: TraceRow) -> None:
        """Check that `row` (`fwd`, `recompute` or `bwd`) is an op its datum may run now, and count it."""
        at = self._next.get(row.sample, 0)
        if row.kind == "recompute":
            if not (at >= self.P and row.stage <= self._backward_stage(at)):
                raise FerretError(f"recompute of stage {row.stage} where the datum's next op is {self._name(at)}")
            return
        expected = at if row.kind == "fwd" else self._backward_stage(at)
        if (row.kind == "fwd") != (at < self.P) or row.stage != expected:
            raise FerretError(f"{row.kind} of stage {row.stage} where the datum's next op is {self._name(at)}")
        self._next[row.sample] = at + 1

    def finish(self, sample: int) -> None:
        """The datum's backward ended (at the lowest stage it trains): forget it."""
        self._next.pop(sample, None)

    def _backward_stage(self, at: int) -> int:
        return 2 * self.P - 1 - at

    def _name(self, at: int) -> str:
        if at < self.P:
            return f"the forward of stage {at}"
        if at < 2 * self.P:
            return f"the backward of stage {self._backward_stage(at)}"
        return "none (its backward is done)"
