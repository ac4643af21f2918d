"""A learning-aware planning score: the adaptation rate with each datum's value discounted by
the delay and the staleness its stages see, with discounts fitted from replays (this project's
addition, not in the papers; docs/planner.md §5.1).

(F3) values a datum by `exp(−c·delay)` with the paper's `c` (1/s), which at pipeline delays of
micro- to milliseconds is 1: it counts throughput and cannot tell a plan whose gradients are
stale from one whose are fresh. Here datum value at stage `i` of worker `n` is

    exp(−δ · D_{n,i}/td − κ_w · τ_{n,i})

* `D_{n,i}` — time from arrival to stage `i`'s update (forward through every stage, backward
  and recomputation down to `i`, plus the wait while an accumulation group fills), in arrivals;
* `τ_{n,i}` — the updates stage `i` receives between the datum's forward there and its
  backward there: the staleness a stashed gradient has; for a latest-weights worker the same
  count measures how far its kept input and the gradient from above lag the weights it uses;
* `δ` (per arrival of delay) and `κ_w` (per update, one per backward-weights kind) come from
  a `LearningModel` fitted to replay runs (benchmarks/fit_learning.py); `BUILTIN` is the fit on
  the roofline TITAN Xp profile of MNISTNet on class-incremental digits.

Every worker delivers `min(1/cycle, 1/(N·td))` data per second (it cannot train more than it
receives), a stage sees the `1/LCM` share omission leaves it, and stages are weighted by
their share of the weights, as in (F3). `score · td` is then the value kept per arrival, 1 for a
learner that trains every datum at once on fresh weights — the predicted online accuracy
relative to Oracle's.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from planner.closed_form import cycle_time, stage_shares, stage_sums, suffix_lcm_reciprocal
from planner.errors import ValidationError
from planner.fileio import atomic_write_json, read_json
from planner.jsonfield import get_field
from planner.plan import BACKWARD_WEIGHTS, Plan, WorkerConfig
from planner.profile import ModelProfile

OBJECTIVES = ("learning", "rate")
# What `ferret plan` optimises unless told otherwise: the learning score, which picks the plans
# that learn best where the two objectives differ (docs/RESULTS.md §4). The `ferret` strategy
# itself keeps the paper's (F3) unless given `objective="learning"`.
DEFAULT_OBJECTIVE = "learning"


@dataclass(frozen=True)
class LearningModel:
    """Discounts per arrival of delay (`delay_per_arrival`) and per update of staleness, by the
    workers' backward weights (`staleness`), and where they were fitted."""

    delay_per_arrival: float
    staleness: dict[str, float]
    fitted_on: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> LearningModel:
        if not (math.isfinite(self.delay_per_arrival) and self.delay_per_arrival >= 0):
            raise ValidationError(f"learning model: delay_per_arrival must be ≥ 0, got {self.delay_per_arrival!r}")
        if set(self.staleness) != set(BACKWARD_WEIGHTS):
            raise ValidationError(f"learning model: staleness needs one discount per kind {list(BACKWARD_WEIGHTS)}")
        for kind, kappa in self.staleness.items():
            if not (math.isfinite(kappa) and kappa >= 0):
                raise ValidationError(f"learning model: staleness[{kind!r}] must be ≥ 0, got {kappa!r}")
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "delay_per_arrival": self.delay_per_arrival,
            "staleness": dict(self.staleness),
            "fitted_on": self.fitted_on,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = "learning model") -> LearningModel:
        if not isinstance(obj, dict):
            raise ValidationError(f"{where} must be a JSON object, got {type(obj).__name__}")
        staleness = get_field(obj, "staleness", dict, where)
        return cls(
            delay_per_arrival=float(get_field(obj, "delay_per_arrival", (int, float), where)),
            staleness={str(k): float(v) for k, v in staleness.items()},
            fitted_on=get_field(obj, "fitted_on", str, where, default=""),
            details=get_field(obj, "details", dict, where, default={}),
        ).validate()

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LearningModel:
        try:
            return cls.from_json(read_json(path, "learning model"))
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc}") from None


def beside(profile_path: str | os.PathLike[str]) -> Path:
    """Where the learning model fitted for a profile lives: `<profile>.learning.json`."""
    path = Path(profile_path)
    return path.with_name(f"{path.stem}.learning.json")


def model_for(profile_path: str | os.PathLike[str] | None) -> LearningModel:
    """The model fitted beside the profile, else the built-in one."""
    if profile_path is not None and beside(profile_path).exists():
        return LearningModel.load(beside(profile_path))
    return BUILTIN


# Fitted by `python benchmarks/fit_learning.py --compensation none` (docs/RESULTS.md §4) on the
# roofline TITAN Xp profile of MNISTNet, class-incremental digits, Adam 1e-3, 10 candidate plans
# × 3 seeds (rms error 0.046 of Oracle's accuracy); δ came out 0: those plans' delays do not
# separate from their staleness.
BUILTIN = LearningModel(
    delay_per_arrival=0.0,
    staleness={"stashed": 0.0422, "latest": 0.0331},
    fitted_on="built-in: mnistnet, roofline titan-xp, class-incremental digits, no compensation",
)


def update_rates(plan: Plan) -> np.ndarray:
    """Optimizer steps per second at each stage: every active worker receives one datum per
    `N·td`, back-propagates a `1/LCM` share of them through the stage and steps every `c^a`."""
    period = plan.num_workers * plan.arrival_interval_s
    rates = np.zeros(plan.num_stages)
    for w in plan.workers:
        if w.active:
            rates += suffix_lcm_reciprocal(w.omission) / np.asarray(w.accumulation, dtype=np.float64) / period
    return rates


@dataclass(frozen=True)
class DatumPath:
    """One worker's datum, per stage: arrival → update (`delay_s`) and forward → backward at
    the stage (`window_s`), and the worker's time per datum (`cycle_s`)."""

    delay_s: np.ndarray
    window_s: np.ndarray
    cycle_s: float


def datum_path(profile: ModelProfile, plan: Plan, worker: WorkerConfig) -> DatumPath:
    sums = stage_sums(profile, [plan.partition])  # per stage its own times, not the slowest's
    f, b = sums.t_fwd, sums.t_bwd
    extra = f if worker.recompute else np.zeros_like(f)
    down = np.cumsum((b + extra)[::-1])[::-1]  # backward (and recomputation) from the top down to i
    up_from = np.cumsum(f[::-1])[::-1]  # forward from stage i to the top
    period = plan.num_workers * plan.arrival_interval_s
    filling = (np.asarray(worker.accumulation, dtype=np.float64) - 1) / 2 * period
    cycle = cycle_time(float(f.max()), float(b.max()), worker.recompute)
    return DatumPath(f.sum() + down + filling, up_from + down, cycle)


def staleness(profile: ModelProfile, plan: Plan, worker: WorkerConfig) -> np.ndarray:
    """τ per stage: updates the stage receives while the datum is between its forward and its
    backward there (the stash's staleness)."""
    return update_rates(plan) * datum_path(profile, plan, worker).window_s


def learning_rate(profile: ModelProfile, plan: Plan, model: LearningModel) -> float:
    """The learning-aware score (value per second; `· td` is the share of Oracle's value kept)."""
    td = plan.arrival_interval_s
    shares = stage_shares(profile, plan.partition)
    rates = update_rates(plan)
    total = 0.0
    terms: dict[WorkerConfig, float] = {}  # workers share a few configurations: each computed once
    for w in plan.workers:
        if not w.active:
            continue
        term = terms.get(w)
        if term is None:
            path = datum_path(profile, plan, w)
            tau = rates * path.window_s
            kappa = model.staleness[w.backward_weights]
            value = np.exp(-model.delay_per_arrival * path.delay_s / td - kappa * tau)
            delivered = 1.0 / max(path.cycle_s, plan.num_workers * td)
            term = terms[w] = float(np.sum(shares * suffix_lcm_reciprocal(w.omission) * value)) * delivered
        total += term
    return total


@dataclass(frozen=True)
class Observation:
    """One replay: the plan, and its online accuracy divided by Oracle's on the same seed."""

    plan: Plan
    accuracy_ratio: float


def fit(profile: ModelProfile, observations: list[Observation], fitted_on: str = "") -> LearningModel:
    """Least-squares fit of `δ, κ_stashed, κ_latest` (all ≥ 0) so that `learning_rate · td`
    predicts each observation's accuracy ratio. A kind no observed plan uses keeps κ = 0 and is
    reported as not fitted."""
    from scipy.optimize import least_squares

    if not observations:
        raise ValidationError("learning model: nothing to fit (no observations)")
    kinds = [k for k in BACKWARD_WEIGHTS if any(w.backward_weights == k for o in observations for w in o.plan.workers)]

    def model_of(x: np.ndarray) -> LearningModel:
        kappa = dict.fromkeys(BACKWARD_WEIGHTS, 0.0)
        kappa.update(zip(kinds, (float(v) for v in x[1:]), strict=True))
        return LearningModel(float(x[0]), kappa)

    def residuals(x: np.ndarray) -> np.ndarray:
        m = model_of(x)
        return np.array(
            [learning_rate(profile, o.plan, m) * o.plan.arrival_interval_s - o.accuracy_ratio for o in observations]
        )

    start = np.array([BUILTIN.delay_per_arrival, *(BUILTIN.staleness[k] for k in kinds)])
    solution = least_squares(residuals, start, bounds=(0.0, np.inf))
    fitted = model_of(solution.x)
    rms = float(np.sqrt(np.mean(solution.fun**2)))
    details = {"observations": len(observations), "rms_error": rms, "fitted_kinds": kinds}
    return LearningModel(fitted.delay_per_arrival, fitted.staleness, fitted_on, details).validate()
