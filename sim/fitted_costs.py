"""The trace-fitted cost model, beside the profile-based one (`sim.costs.ProfileCosts`).

`ferret calibrate` (analysis/calibrate/) fits per-layer forward, backward and recompute times,
the per-op overhead, the executor's loop between ops, the optimizer step and the link to measured traces and writes them as
`costs.json` (`LayerCosts`). For a plan, `LayerCosts.for_partition` gives the engine its
`OpCosts`: a stage that a measured run had (same partition) costs what was measured for it —
a stage's cost need not be the sum of its layers' (one optimizer step over all its weights, one
autograd graph) — and any other stage its layers' sums, as for a profile; a recompute costs what
was measured for recomputes (a profile has only forwards to charge it), and nothing is scaled:
the times are already this machine's. Pass it as `simulate(..., costs=...)` or `ferret simulate --costs costs.json`.

JSON: `{"source": "calibrated", "layers": [{"name", "t_fwd_s", "t_bwd_s", "t_rec_s"}, ...],
"stages": [{"partition", "t_fwd_s", "t_bwd_s", "t_rec_s"}, ...] (per stage, null = not measured),
"op_overhead_s", "loop_s" (absent = 0), "update_s", "link_latency_s", "link_bandwidth_Bps" (null = free),
"jitter_sequence" (absent = none: the measured op-time factors `empirical` jitter draws from, in time order)}`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from planner.errors import ValidationError
from planner.fileio import atomic_write_json, read_json
from planner.jsonfield import get_field
from planner.profile import ModelProfile
from sim.costs import Affine, ProfileCosts, check_jitter_sequence


@dataclass(frozen=True)
class FittedCosts(ProfileCosts):
    """`OpCosts` of one partition from fitted per-stage times: a profile's, plus recompute's own."""

    recomputes: tuple[Affine, ...] = ()

    def recompute(self, stage: int) -> Affine:
        return self.recomputes[stage]


@dataclass(frozen=True)
class StageTimes:
    """The measured per-stage times of one partition (None: that op was not seen)."""

    partition: tuple[int, ...]
    t_fwd: tuple[float | None, ...]
    t_bwd: tuple[float | None, ...]
    t_rec: tuple[float | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {"partition": list(self.partition), **{k: list(getattr(self, k[:-2])) for k in KEYS}}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> StageTimes:
        if not isinstance(obj, dict):
            raise ValidationError(f"{where} must be an object")
        partition = tuple(int(x) for x in get_field(obj, "partition", list, where))
        lists = [get_field(obj, k, list, where) for k in KEYS]
        if any(len(v) != len(partition) - 1 for v in lists):
            raise ValidationError(f"{where}: one time per stage of {list(partition)}")
        times = [tuple(None if x is None else float(x) for x in v) for v in lists]
        return cls(partition, times[0], times[1], times[2])


@dataclass(frozen=True)
class LayerCosts:
    """Per-layer times and the per-op terms, fitted to measured traces (one batch row each)."""

    names: tuple[str, ...]
    t_fwd: tuple[float, ...]
    t_bwd: tuple[float, ...]
    t_rec: tuple[float, ...]
    op_overhead_s: float = 0.0
    update_s: float = 0.0
    link_latency_s: float = 0.0
    link_bandwidth_Bps: float = math.inf
    stages: tuple[StageTimes, ...] = ()
    loop_s: float = 0.0
    jitter_sequence: tuple[float, ...] = ()  # measured op-time factors (analysis/calibrate/factors.py)

    def __post_init__(self) -> None:
        n = len(self.names)
        if not n or any(len(t) != n for t in (self.t_fwd, self.t_bwd, self.t_rec)):
            raise ValidationError("costs: every layer needs a name, t_fwd_s, t_bwd_s and t_rec_s")
        for key in ("op_overhead_s", "loop_s", "update_s", "link_latency_s"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ValidationError(f"costs: {key} must be a finite time ≥ 0, got {value!r}")
        if not self.link_bandwidth_Bps > 0:
            raise ValidationError(f"costs: link_bandwidth_Bps must be positive, got {self.link_bandwidth_Bps!r}")
        if any(not (math.isfinite(t) and t >= 0) for t in (*self.t_fwd, *self.t_bwd, *self.t_rec)):
            raise ValidationError("costs: layer times must be finite and ≥ 0")
        if self.jitter_sequence:
            check_jitter_sequence(self.jitter_sequence, "costs")

    def check(self, profile: ModelProfile) -> LayerCosts:
        """Refuse costs fitted for another model's layers."""
        names = tuple(layer.name for layer in profile.layers)
        if names != self.names:
            raise ValidationError(f"costs are for layers {list(self.names)}, the profile has {list(names)}")
        return self

    def for_partition(self, partition: Sequence[int]) -> FittedCosts:
        starts = np.asarray(partition[:-1], dtype=np.intp)
        measured = next((m for m in self.stages if m.partition == tuple(partition)), None)

        def per_stage(layers: tuple[float, ...], seen: tuple[float | None, ...] | None) -> tuple[Affine, ...]:
            sums = np.add.reduceat(np.asarray(layers), starts).tolist()
            if seen is not None:
                sums = [x if s is None else s for x, s in zip(sums, seen, strict=True)]
            return tuple(Affine(0.0, float(x)) for x in sums)

        return FittedCosts(
            forwards=per_stage(self.t_fwd, None if measured is None else measured.t_fwd),
            backwards=per_stage(self.t_bwd, None if measured is None else measured.t_bwd),
            recomputes=per_stage(self.t_rec, None if measured is None else measured.t_rec),
            op_overhead_s=self.op_overhead_s,
            optimizer_step_s=self.update_s,
            link_latency_s=self.link_latency_s,
            link_bandwidth_Bps=self.link_bandwidth_Bps,
            loop_s=self.loop_s,
            jitter_sequence=self.jitter_sequence,
        )

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        return {
            "source": "calibrated",
            "layers": [
                {"name": n, "t_fwd_s": f, "t_bwd_s": b, "t_rec_s": r}
                for n, f, b, r in zip(self.names, self.t_fwd, self.t_bwd, self.t_rec, strict=True)
            ],
            "op_overhead_s": self.op_overhead_s,
            "loop_s": self.loop_s,
            "update_s": self.update_s,
            "link_latency_s": self.link_latency_s,
            "link_bandwidth_Bps": None if math.isinf(self.link_bandwidth_Bps) else self.link_bandwidth_Bps,
            "stages": [m.to_json() for m in self.stages],
        } | ({"jitter_sequence": list(self.jitter_sequence)} if self.jitter_sequence else {})

    @classmethod
    def from_json(cls, obj: Any, where: str = "costs") -> LayerCosts:
        if not isinstance(obj, dict):
            raise ValidationError(f"{where} must be a JSON object")
        layers = get_field(obj, "layers", list, where)
        if not all(isinstance(x, dict) for x in layers):
            raise ValidationError(f"{where}.layers must be a list of objects")
        rows = [
            (get_field(x, "name", str, where), *(float(get_field(x, k, (int, float), where)) for k in KEYS))
            for x in layers
        ]
        bandwidth = obj.get("link_bandwidth_Bps")
        if "jitter_factors" in obj:
            raise ValidationError(
                f"{where}: jitter_factors is an older ferret calibrate's sorted table, which has lost the "
                "measured order jitter_sequence keeps: rerun ferret calibrate"
            )
        factors = get_field(obj, "jitter_sequence", list, where, None)
        if factors is not None:
            if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in factors):
                raise ValidationError(f"{where}: jitter_sequence must be a list of numbers")
            factors = check_jitter_sequence(factors, where)
        return cls(
            names=tuple(r[0] for r in rows),
            t_fwd=tuple(r[1] for r in rows),
            t_bwd=tuple(r[2] for r in rows),
            t_rec=tuple(r[3] for r in rows),
            op_overhead_s=float(get_field(obj, "op_overhead_s", (int, float), where)),
            loop_s=float(get_field(obj, "loop_s", (int, float), where, 0.0)),
            update_s=float(get_field(obj, "update_s", (int, float), where)),
            link_latency_s=float(get_field(obj, "link_latency_s", (int, float), where)),
            link_bandwidth_Bps=math.inf if bandwidth is None else float(bandwidth),
            stages=tuple(
                StageTimes.from_json(m, f"{where}.stages[{i}]")
                for i, m in enumerate(get_field(obj, "stages", list, where, []))
            ),
            jitter_sequence=() if factors is None else factors,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LayerCosts:
        try:
            return cls.from_json(read_json(path, "costs"), f"costs {path}")
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc}") from None


KEYS = ("t_fwd_s", "t_bwd_s", "t_rec_s")
