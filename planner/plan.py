"""A pipeline plan: partition, worker configurations (SPEC §1) and placement, as JSON.

`Plan` is everything an executor needs; the planner fills `feasible` and `predicted`.
A removed worker (T4) has `offset == -1`. `validate` holds every number to what it measures
(planner.quantities): at most `MAX_WORKERS` workers, device indices below `MAX_DEVICES`, an
interval in [1 ps, ~31 years], sizes within 1 PiB. `provenance` (optional) names the profile
the plan was made from (planner/provenance.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

from planner.errors import ValidationError
from planner.fileio import atomic_write_json, read_json
from planner.jsonfield import get_field
from planner.provenance import PROVENANCE_KEY, read_provenance
from planner.quantities import MAX_COUNT, MAX_DEVICES, MAX_LAYERS, MAX_WORKERS, check_size
from planner.stream import check_stream

REMOVED = -1
STASHED, LATEST = "stashed", "latest"
BACKWARD_WEIGHTS = (STASHED, LATEST)
MAX_GROUP = 2**20  # accumulation or mini-batch: data per optimizer step


@dataclass(frozen=True)
class WorkerConfig:
    """One worker: interleave offset `c^d`, recomputation `c^r`, per-stage `c^a` and `c^o`, and
    the weights its backwards differentiate against (SPEC §3.2): `stashed` — the version its
    forward ran on (weight stashing) — or `latest` — the stage's current weights, recomputed
    from the kept stage input (so it needs `recompute` and stashes no version)."""

    offset: int
    recompute: bool
    accumulation: tuple[int, ...]
    omission: tuple[int, ...]
    backward_weights: str = STASHED

    @property
    def active(self) -> bool:
        return self.offset != REMOVED

    @property
    def latest(self) -> bool:
        """Backwards run on the stage's latest weights (no stashed versions)."""
        return self.backward_weights == LATEST

    @classmethod
    def default(cls, offset: int, num_stages: int, recompute: bool = False) -> WorkerConfig:
        """A worker with no memory-saving technique applied."""
        return cls(offset, recompute, (1,) * num_stages, (0,) * num_stages)

    def to_json(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "recompute": self.recompute,
            "accumulation": list(self.accumulation),
            "omission": list(self.omission),
            "backward_weights": self.backward_weights,
        }

    @classmethod
    def from_json(cls, obj: Any, where: str) -> WorkerConfig:
        if not isinstance(obj, dict):
            raise ValidationError(f"{where} must be an object, got {type(obj).__name__}")
        return cls(
            offset=get_field(obj, "offset", int, where),
            recompute=get_field(obj, "recompute", bool, where),
            accumulation=_int_tuple(get_field(obj, "accumulation", list, where), f"{where}.accumulation"),
            omission=_int_tuple(get_field(obj, "omission", list, where), f"{where}.omission"),
            backward_weights=get_field(obj, "backward_weights", str, where, default=STASHED),
        )


@dataclass(frozen=True)
class Prediction:
    """Closed-form prediction attached to a plan by the strategy that made it."""

    adaptation_rate: float
    memory_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"adaptation_rate": self.adaptation_rate, "memory_bytes": self.memory_bytes}

    @classmethod
    def from_json(cls, obj: Any, where: str = "plan.predicted") -> Prediction:
        if not isinstance(obj, dict):
            raise ValidationError(f"{where} must be an object, got {type(obj).__name__}")
        return cls(
            adaptation_rate=float(get_field(obj, "adaptation_rate", (int, float), where)),
            memory_bytes=get_field(obj, "memory_bytes", int, where),
        )


@dataclass(frozen=True)
class Plan:
    """Partition `L`, worker configurations `C`, placement and the stream it was made for.

    `partition` holds the layer boundaries `[L_0=0, ..., L_P]`; stage `j` owns layers
    `partition[j] .. partition[j+1]-1`. `placement[n][j]` is the device of worker `n`'s
    stage `j`. `minibatch` is the number of data a synchronous strategy (GPipe, 1F1B-flush)
    gathers before it runs; asynchronous strategies use 1.
    """

    strategy: str
    partition: tuple[int, ...]
    workers: tuple[WorkerConfig, ...]
    placement: tuple[tuple[int, ...], ...]
    arrival_interval_s: float
    decay_per_s: float = 1.0
    budget_bytes: int | None = None
    value_per_datum: float = 1.0
    minibatch: int = 1
    feasible: bool = True
    predicted: Prediction | None = None
    provenance: dict[str, Any] | None = field(default=None, compare=False)  # the profile it was made from

    # ----------------------------------------------------------------- derived views
    @property
    def num_stages(self) -> int:
        return len(self.partition) - 1

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    @property
    def active_workers(self) -> tuple[int, ...]:
        return tuple(n for n, w in enumerate(self.workers) if w.active)

    @property
    def num_layers(self) -> int:
        return self.partition[-1]

    @property
    def num_devices(self) -> int:
        return 1 + max((d for row in self.placement for d in row), default=0)

    @property
    def active_devices(self) -> int:
        """Devices that host a stage of an active worker (removed workers' slots stay idle)."""
        return len({d for n in self.active_workers for d in self.placement[n]})

    def stage_layers(self, stage: int) -> range:
        return range(self.partition[stage], self.partition[stage + 1])

    def with_prediction(self, adaptation_rate: float, memory_bytes: int, feasible: bool) -> Plan:
        return replace(self, predicted=Prediction(adaptation_rate, int(memory_bytes)), feasible=feasible)

    # ----------------------------------------------------------------- validation
    def validate(self, num_layers: int | None = None) -> Plan:
        """Raise `ValidationError` naming the offending field; return self for chaining.

        With `num_layers` (from the profile), the partition must cover exactly those layers.
        """
        part = self.partition
        if len(part) < 2:
            raise ValidationError(f"plan.partition needs at least 2 boundaries [0, ..., L], got {list(part)}")
        if part[0] != 0:
            raise ValidationError(f"plan.partition must start at layer 0, got {part[0]}")
        for j in range(len(part) - 1):
            if part[j + 1] <= part[j]:
                raise ValidationError(
                    f"plan.partition must be strictly increasing (stage {j} would be empty): {list(part)}"
                )
        if num_layers is not None and part[-1] != num_layers:
            raise ValidationError(
                f"plan.partition ends at layer {part[-1]} but the profile has {num_layers} layers; "
                "the partition must cover every layer exactly once"
            )
        P = self.num_stages
        if P > MAX_LAYERS:
            raise ValidationError(f"plan has {P} stages, more than the {MAX_LAYERS} layers ferret plans for")
        if not self.workers:
            raise ValidationError("plan.workers is empty; a plan needs at least one worker")
        if self.num_workers > MAX_WORKERS:
            raise ValidationError(f"plan has {self.num_workers} workers, more than the {MAX_WORKERS} ferret runs")
        offsets: dict[int, int] = {}
        for n, w in enumerate(self.workers):
            where = f"plan.workers[{n}]"
            if w.offset != REMOVED and not 0 <= w.offset < self.num_workers:
                raise ValidationError(
                    f"{where}.offset must be -1 (removed) or in [0, {self.num_workers}), got {w.offset}"
                )
            if w.active:
                if w.offset in offsets:
                    raise ValidationError(f"{where}.offset {w.offset} is already used by worker {offsets[w.offset]}")
                offsets[w.offset] = n
            if w.backward_weights not in BACKWARD_WEIGHTS:
                raise ValidationError(
                    f"{where}.backward_weights must be one of {', '.join(BACKWARD_WEIGHTS)}, got {w.backward_weights!r}"
                )
            if w.latest and not w.recompute:
                raise ValidationError(
                    f"{where}.backward_weights 'latest' re-runs the stage forward from the kept input: "
                    "it needs recompute true"
                )
            for key in ("accumulation", "omission"):
                values = getattr(w, key)
                if len(values) != P:
                    raise ValidationError(f"{where}.{key} has {len(values)} entries, the plan has {P} stages")
            for j, (acc, omit) in enumerate(zip(w.accumulation, w.omission, strict=True)):
                if not 1 <= acc <= MAX_GROUP:
                    raise ValidationError(f"{where}.accumulation[{j}] must be in [1, {MAX_GROUP}], got {acc}")
                if not 0 <= omit <= P - 1 - j:
                    raise ValidationError(f"{where}.omission[{j}] must be in [0, P-1-j = {P - 1 - j}], got {omit}")
        if len(self.placement) != self.num_workers:
            raise ValidationError(
                f"plan.placement has {len(self.placement)} rows, the plan has {self.num_workers} workers"
            )
        devices = max(MAX_DEVICES, self.num_workers * P)  # each (worker, stage) on its own device at most
        for n, row in enumerate(self.placement):
            if len(row) != P:
                raise ValidationError(f"plan.placement[{n}] has {len(row)} entries, the plan has {P} stages")
            if any(d < 0 for d in row):
                raise ValidationError(f"plan.placement[{n}] has a negative device index: {list(row)}")
            if any(d >= devices for d in row):
                raise ValidationError(
                    f"plan.placement[{n}] names device {max(row)}; device indices must be below {devices} "
                    f"({MAX_DEVICES}, or the plan's N·P slots if more)"
                )
        check_stream(self.arrival_interval_s, self.decay_per_s, self.value_per_datum, where="plan")
        if self.budget_bytes is not None:
            if self.budget_bytes <= 0:
                raise ValidationError(
                    f"plan.budget_bytes must be positive or null (unconstrained), got {self.budget_bytes}"
                )
            check_size(self.budget_bytes, "plan.budget_bytes")
        if not 1 <= self.minibatch <= MAX_GROUP:
            raise ValidationError(f"plan.minibatch must be in [1, {MAX_GROUP}], got {self.minibatch}")
        if self.predicted is not None:
            rate, memory = self.predicted.adaptation_rate, self.predicted.memory_bytes
            if not (math.isfinite(rate) and rate >= 0) or not 0 <= memory <= MAX_COUNT:
                raise ValidationError(
                    f"plan.predicted must hold a finite rate ≥ 0 and memory ≥ 0, got {rate!r}, {memory!r}"
                )
        return self

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "partition": list(self.partition),
            "workers": [w.to_json() for w in self.workers],
            "placement": [list(row) for row in self.placement],
            "arrival_interval_s": self.arrival_interval_s,
            "decay_per_s": self.decay_per_s,
            "budget_bytes": self.budget_bytes,
            "value_per_datum": self.value_per_datum,
            "minibatch": self.minibatch,
            "feasible": self.feasible,
            "predicted": None if self.predicted is None else self.predicted.to_json(),
            **({PROVENANCE_KEY: self.provenance} if self.provenance else {}),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Plan:
        if not isinstance(obj, dict):
            raise ValidationError(f"plan must be a JSON object, got {type(obj).__name__}")
        workers_raw = get_field(obj, "workers", list, "plan")
        placement_raw = get_field(obj, "placement", list, "plan")
        predicted_raw = obj.get("predicted")
        plan = cls(
            strategy=get_field(obj, "strategy", str, "plan"),
            partition=_int_tuple(get_field(obj, "partition", list, "plan"), "plan.partition"),
            workers=tuple(WorkerConfig.from_json(w, f"plan.workers[{n}]") for n, w in enumerate(workers_raw)),
            placement=tuple(_int_tuple(row, f"plan.placement[{n}]") for n, row in enumerate(placement_raw)),
            arrival_interval_s=float(get_field(obj, "arrival_interval_s", (int, float), "plan")),
            decay_per_s=float(get_field(obj, "decay_per_s", (int, float), "plan", default=1.0)),
            budget_bytes=get_field(obj, "budget_bytes", (int, type(None)), "plan", default=None),
            value_per_datum=float(get_field(obj, "value_per_datum", (int, float), "plan", default=1.0)),
            minibatch=get_field(obj, "minibatch", int, "plan", default=1),
            feasible=get_field(obj, "feasible", bool, "plan", default=True),
            predicted=None if predicted_raw is None else Prediction.from_json(predicted_raw),
            provenance=read_provenance(obj, "plan"),
        )
        return plan.validate()

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str], num_layers: int | None = None) -> Plan:
        obj = read_json(path, "plan")
        try:
            return cls.from_json(obj).validate(num_layers)
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc}") from None


def default_placement(num_workers: int, num_stages: int, num_devices: int | None = None) -> tuple[tuple[int, ...], ...]:
    """Device of worker `n`'s stage `j`: `(n·P + j) mod D`.

    The default `D = N·P` gives every (worker, stage) its own device: the closed forms' regime
    (no contention), which is what the planner plans for, so a plan simulates and runs as it was
    predicted unless the user says the hardware is smaller. `D = P` is DESIGN.md's rule, stage
    `j` of every worker on device `j`; a `D` in between spreads the workers evenly.
    """
    devices = num_workers * num_stages if num_devices is None else num_devices
    if devices < 1:
        raise ValidationError(f"number of devices must be ≥ 1, got {devices}")
    return tuple(tuple((n * num_stages + j) % devices for j in range(num_stages)) for n in range(num_workers))


def _int_tuple(values: Any, where: str) -> tuple[int, ...]:
    if not isinstance(values, list):
        raise ValidationError(f"{where} must be a list of integers, got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValidationError(f"{where}[{i}] must be an integer, got {v!r}")
        out.append(v)
    return tuple(out)
