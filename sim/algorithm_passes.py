"""What an OCL algorithm computes beyond a datum's training forward and backward, as the twin charges it.

The twin's ops are the profile's per-stage training forward and backward (`sim.costs.OpCosts`).
Some algorithms run more passes through a stage per datum, and a real run spends that time on
the stage's device (executor/pipeline/stage_worker.py, importance.py, scoring.py):

- **LwF** runs its teacher's forward at every stage inside the datum's training forward, on
  the same rows (no grad), once a teacher exists: `with_forward = 1`, from the first datum
  distilled (`from_sample`).
- **MIR** scores the datum's replay candidates before its stage-0 forward, in three passes over
  every stage: the new rows' forward and the candidates' (`ℓ(θ)`), the new rows' backward (the
  virtual step), the candidates through the virtual weights (`ℓ(θ')`) — per stage, forwards of
  `1 + 2·C` rows and a backward of 1 row (`C` candidates): `before_forwards`, `before_backwards`.
- **MAS** runs its importance pass after the datum's backward: an eval-mode forward of its new
  rows up every stage and the gradient of `‖f(x)‖²` down: `after_forwards`, `after_backwards`.

**Units.** Each count is in passes of the stage's training op for one datum: `1.0` forward is
the stage's forward op as the twin times it for a datum (`OpCosts.forward(j)` on the datum's
share of rows, times `SimConfig.time_scale`, which already counts a replay memory's rows), so a
pass over `n` of the datum's `R` rows counts `n / R` (linear in the rows, the twin's assumption for
a datum's micro-batch). The counts come from the executor's algorithm registry (`twin_passes`
there, from each algorithm's `step_passes`): this module knows no algorithm.

**How the twin charges them** (sim/parts.py `set_op_times`, sim/completion.py):

- `with_forward` and the `before_*` passes lengthen the datum's forward op at every stage:
  `fwd + (with_forward + before_forwards)·fwd + before_backwards·bwd`. LwF's teacher runs inside
  that op in reality too. MIR's scoring runs before the stage-0 forward in reality: the twin
  puts each stage's share of it in the datum's forward there instead — the same device time per
  stage and on the datum's path to its updates; the scoring messages' transfers are not charged.
- The `after_*` passes hold the stage's device (and slot) `after_forwards·fwd +
  after_backwards·bwd` longer after the datum's backward there (after its update: the
  update's time is not delayed), or after its forward at a stage its backward omits (the pass
  goes through every stage). In reality the pass follows the datum's last backward, up the
  stages and down again, with ops last in dispatch order; the twin charges each stage's share
  at once, and counts the datum done at its last backward (reality: when the pass is back).
- Approximations: a no-grad forward costs a training forward; the rows are linear; the passes
  hold no memory (the MAS pass's graph, MIR's virtual weights) and write no trace row; the passes
  take the op's jitter and contention factor; LwF's first teacher is placed in stream order
  (reality: the admitted data's, so drops move it later); MIR scores from the first datum with
  its full candidate count (reality: once the buffer holds more than `replay_batch` rows).

`NO_PASSES` (every count 0, the default: vanilla, ER) changes no op time: every other twin run's
schedule is what it was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from planner.config_field import check_bounds, config_field, json_fields
from planner.errors import ValidationError

#: When an algorithm's passes run (`AlgorithmPasses.at`): inside each training forward, before the
#: datum's first forward, after its backward.
PHASES = ("with_forward", "before_forward", "after_backward")
PASS_LIMIT = 1e6  # passes per op: far beyond any algorithm's (MIR's 1 + 2·C), so times stay finite


@dataclass(frozen=True)
class AlgorithmPasses:
    """An algorithm's extra passes per datum and stage, in passes of the stage's training op on
    the datum (module docstring): with its forward, before its first forward, after its backward."""

    with_forward: float = config_field(
        0.0, help="forwards run inside each training forward (LwF's teacher)", unit="float", ge=0, le=PASS_LIMIT
    )
    before_forwards: float = config_field(
        0.0,
        help="forwards per stage before the datum's first forward (MIR's scoring)",
        unit="float",
        ge=0,
        le=PASS_LIMIT,
    )
    before_backwards: float = config_field(
        0.0,
        help="backwards per stage before the datum's first forward (MIR's virtual step)",
        unit="float",
        ge=0,
        le=PASS_LIMIT,
    )
    after_forwards: float = config_field(
        0.0, help="forwards per stage after the datum's backward (MAS's importance)", unit="float", ge=0, le=PASS_LIMIT
    )
    after_backwards: float = config_field(
        0.0, help="backwards per stage after the datum's backward (MAS's importance)", unit="float", ge=0, le=PASS_LIMIT
    )
    from_sample: int = config_field(
        0, help="the first datum (stream index) that runs them (LwF: its first teacher)", unit="int", ge=0, le=2**62
    )

    def __post_init__(self) -> None:
        check_bounds(self, "algorithm passes:")

    @classmethod
    def at(cls, phase: str, forwards: float, backwards: float, from_sample: int = 0) -> AlgorithmPasses:
        """`forwards` and `backwards` passes per datum and stage that run at `phase` (`PHASES`)."""
        if phase == "with_forward":
            if backwards:
                raise ValidationError("algorithm passes: a pass inside the training forward runs no backward")
            return cls(with_forward=forwards, from_sample=from_sample)
        if phase == "before_forward":
            return cls(before_forwards=forwards, before_backwards=backwards, from_sample=from_sample)
        if phase == "after_backward":
            return cls(after_forwards=forwards, after_backwards=backwards, from_sample=from_sample)
        raise ValidationError(f"algorithm passes: unknown phase {phase!r}; one of {', '.join(PHASES)}")

    @property
    def none(self) -> bool:
        """No extra pass at all: the twin's op times are the training ops'."""
        return not (
            self.with_forward
            or self.before_forwards
            or self.before_backwards
            or self.after_forwards
            or self.after_backwards
        )

    def forward_extra_s(self, forward_s: float, backward_s: float) -> float:
        """Seconds added to a datum's forward op whose training forward takes `forward_s` and
        backward `backward_s`: the passes with it and before it."""
        return (self.with_forward + self.before_forwards) * forward_s + self.before_backwards * backward_s

    def after_s(self, forward_s: float, backward_s: float) -> float:
        """Seconds the stage's device stays busy after the datum's backward (or omitted-backward forward)."""
        return self.after_forwards * forward_s + self.after_backwards * backward_s

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any, where: str = "algorithm_passes") -> AlgorithmPasses:
        if isinstance(obj, AlgorithmPasses):
            return obj
        values: dict[str, Any] = {
            k: float(v) if k != "from_sample" and isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in json_fields(cls, obj, where).items()
        }
        return cls(**values)


NO_PASSES = AlgorithmPasses()
