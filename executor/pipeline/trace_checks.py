"""What a run that follows a trace checks op by op — and how it tolerates data-dependent freezing.

The replay executor and the distributed lockstep driver follow a trace the twin scheduled
before the run; every version an op ran on, every backward's staleness and every update's
samples must be the trace's, or the trace is not this plan's and the run stops naming the row.

aL-SAR's adaptive freezing (docs/ocl.md, "In pipelines") decides per datum, at the last stage's
backward, how many leading layers it does not train — something no schedule made before the run
can know. **Decision: the run tolerates it rather than telling the twin.** A stage inside a
datum's frozen prefix still runs the datum's `bwd` row, as a release (nothing computed, nothing
applied); an `update` row whose group lost frozen gradients applies what the group holds (the
row's samples less the frozen ones); one whose every datum froze applies nothing, and from then
on that stage's versions run one behind the trace. So `TraceChecks` counts, per stage, the update
rows skipped so far (`skipped`) and checks

* a version an op ran on as `measured + skipped[stage]` — for a backward's stashed version, the
  count at the datum's forward there;
* a staleness as `measured + (skipped now − skipped at the datum's forward)`: updates the trace
  has in between that did not happen here.

Without freezing nothing is skipped and these are the exact checks. The virtual times stay the
twin's: in a followed trace freezing saves FLOPs and real compute, not schedule time.
"""

from __future__ import annotations

from executor.stage import BackwardResult, UpdateResult
from planner.errors import FerretError
from sim.trace import TraceRow


class TraceChecks:
    def __init__(self, num_stages: int) -> None:
        self.skipped = [0] * num_stages  # update rows that applied nothing (every datum froze), per stage
        self._at_forward: dict[tuple[int, int], int] = {}  # (sample, stage) → skipped[stage] at its forward
        self._frozen: set[tuple[int, int]] = set()  # (sample, stage): backward released, update row to come

    def forward(self, row: TraceRow, version: int, stored: bool) -> None:
        if stored:
            self._at_forward[(row.sample, row.stage)] = self.skipped[row.stage]
        check(version + self.skipped[row.stage], row.version, "ran on version")

    def recompute(self, row: TraceRow, version: int) -> None:
        check(version + self._at_forward.get((row.sample, row.stage), 0), row.version, "recomputed on version")

    def backward(self, row: TraceRow, result: BackwardResult) -> None:
        at = self._at_forward.pop((row.sample, row.stage), 0)
        check(result.version + at, row.version, "back-propagated against version")
        check(result.staleness + self.skipped[row.stage] - at, row.staleness, "had staleness")
        if not result.ran:  # released by a frozen prefix: its update row will not find it
            self._frozen.add((row.sample, row.stage))

    def update(self, row: TraceRow, applied: UpdateResult | None) -> bool:
        """Check an update row against what the stage applied (None: its group held nothing);
        return whether an update happened."""
        stage = row.stage
        expected = tuple(s for s in row.samples if (s, stage) not in self._frozen)
        self._frozen.difference_update((s, stage) for s in row.samples)
        if applied is None:
            if expected:
                raise FerretError(f"update of stage {stage} for worker {row.worker}, which holds no gradient")
            self.skipped[stage] += 1
            return False
        if tuple(applied.samples) != expected:
            raise FerretError(
                f"stage {stage} updated with samples {list(applied.samples)}, the trace says {list(expected)}"
            )
        check(applied.version + self.skipped[stage], row.version, "updated version")
        return True


def check(measured: int, traced: int, what: str) -> None:
    if measured != traced:
        raise FerretError(f"{what} {measured}, the trace says {traced}; is this trace from this plan?")
