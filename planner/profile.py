"""Per-layer cost profile of a model: the planner's only view of the model.

JSON format (DESIGN.md): {"model", "device", "batch_size", "source", "layers": [{"name",
"t_fwd_s", "t_bwd_s", "param_bytes", "act_bytes", "fwd_flops"}, ...], "provenance": {...}}.
Unknown keys are ignored on read so that later versions may add fields. Every number must be
what it measures (planner.quantities): times 0 or in [1 ps, ~31 years], sizes and their totals
within 1 PiB, so the planner's sums and products cannot overflow. `provenance` (optional, see
planner/provenance.py) says what model, input and class count the profile was made for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from planner.errors import ValidationError
from planner.fileio import atomic_write_json, read_json
from planner.jsonfield import get_field as _get
from planner.provenance import PROVENANCE_KEY, layers_id, read_provenance, structure_id
from planner.quantities import MAX_BYTES, MAX_COUNT, MAX_LAYERS, MAX_TIME_S, check_size, check_time

PROFILE_SOURCES = ("measured", "roofline", "calibrated", "synthetic")


@dataclass(frozen=True)
class LayerProfile:
    """Cost of one partitionable layer for one sample (or micro-batch, as profiled)."""

    name: str
    t_fwd_s: float
    t_bwd_s: float
    param_bytes: int
    act_bytes: int
    fwd_flops: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "t_fwd_s": self.t_fwd_s,
            "t_bwd_s": self.t_bwd_s,
            "param_bytes": self.param_bytes,
            "act_bytes": self.act_bytes,
            "fwd_flops": self.fwd_flops,
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = "layer") -> LayerProfile:
        if not isinstance(obj, dict):
            raise ValidationError(f"{where} must be an object, got {type(obj).__name__}")
        return cls(
            name=_get(obj, "name", str, where),
            t_fwd_s=float(_get(obj, "t_fwd_s", (int, float), where)),
            t_bwd_s=float(_get(obj, "t_bwd_s", (int, float), where)),
            param_bytes=_get(obj, "param_bytes", int, where),
            act_bytes=_get(obj, "act_bytes", int, where),
            fwd_flops=_get(obj, "fwd_flops", int, where, default=0),
        )

    def validate(self, where: str = "layer") -> None:
        for key in ("t_fwd_s", "t_bwd_s"):
            check_time(getattr(self, key), f"{where}.{key}")
        for key in ("param_bytes", "act_bytes"):
            check_size(getattr(self, key), f"{where}.{key}")
        if not 0 <= self.fwd_flops <= MAX_COUNT:
            raise ValidationError(f"{where}.fwd_flops must be in [0, {MAX_COUNT:.3g}], got {self.fwd_flops!r}")
        if self.t_fwd_s + self.t_bwd_s <= 0:
            raise ValidationError(f"{where} has zero forward and backward time; a layer must cost something")


@dataclass(frozen=True)
class ModelProfile:
    """An ordered sequence of layer profiles plus where and how they were obtained."""

    model: str
    layers: tuple[LayerProfile, ...]
    device: str = "cpu"
    batch_size: int = 1
    source: str = "measured"
    provenance: dict[str, Any] | None = field(default=None, compare=False)  # what it was made for

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def structure(self) -> str:
        """The model's layers as the planner sees them (planner.provenance.structure_id)."""
        return structure_id(((x.name, x.param_bytes, x.act_bytes) for x in self.layers), self.batch_size)

    def made_from(self) -> dict[str, Any]:
        """What this profile describes, in provenance terms: what it records, its layer names
        and, unless its numbers are made up (`source` synthetic), its structure."""
        made = {**(self.provenance or {}), "model": self.model, "layers": layers_id(x.name for x in self.layers)}
        if self.source != "synthetic":
            made["structure"] = self.structure
        return made

    @cached_property
    def t_fwd(self) -> np.ndarray:
        return np.array([layer.t_fwd_s for layer in self.layers], dtype=np.float64)

    @cached_property
    def t_bwd(self) -> np.ndarray:
        return np.array([layer.t_bwd_s for layer in self.layers], dtype=np.float64)

    @cached_property
    def param_bytes(self) -> np.ndarray:
        return np.array([layer.param_bytes for layer in self.layers], dtype=np.int64)

    @cached_property
    def act_bytes(self) -> np.ndarray:
        return np.array([layer.act_bytes for layer in self.layers], dtype=np.int64)

    @cached_property
    def fwd_flops(self) -> np.ndarray:
        return np.array([layer.fwd_flops for layer in self.layers], dtype=np.int64)

    def validate(self) -> ModelProfile:
        """Raise `ValidationError` naming the offending field; return self for chaining."""
        if not self.model:
            raise ValidationError("profile.model must be a non-empty string")
        if not self.layers:
            raise ValidationError("profile.layers is empty; a profile needs at least one layer")
        if len(self.layers) > MAX_LAYERS:
            raise ValidationError(f"profile has {len(self.layers)} layers, more than the {MAX_LAYERS} ferret plans for")
        if not 1 <= self.batch_size <= MAX_COUNT:
            raise ValidationError(f"profile.batch_size must be ≥ 1, got {self.batch_size}")
        if self.source not in PROFILE_SOURCES:
            raise ValidationError(f"profile.source must be one of {', '.join(PROFILE_SOURCES)}, got {self.source!r}")
        for i, layer in enumerate(self.layers):
            layer.validate(f"profile.layers[{i}]")
        total = sum(x.param_bytes + x.act_bytes for x in self.layers)
        if total > MAX_BYTES:
            raise ValidationError(f"profile's parameter and activation bytes add up to {total:.3g}, beyond 1 PiB")
        if sum(x.fwd_flops for x in self.layers) > MAX_COUNT:
            raise ValidationError(f"profile's forward FLOPs add up to more than {MAX_COUNT:.3g}")
        if sum(x.t_fwd_s + x.t_bwd_s for x in self.layers) > MAX_TIME_S:
            raise ValidationError("profile's layer times add up to more than ~31 years")
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "device": self.device,
            "batch_size": self.batch_size,
            "source": self.source,
            "layers": [layer.to_json() for layer in self.layers],
            **({PROVENANCE_KEY: self.provenance} if self.provenance else {}),
        }

    @classmethod
    def from_json(cls, obj: Any) -> ModelProfile:
        if not isinstance(obj, dict):
            raise ValidationError(f"profile must be a JSON object, got {type(obj).__name__}")
        layers_raw = _get(obj, "layers", list, "profile")
        profile = cls(
            model=_get(obj, "model", str, "profile"),
            device=_get(obj, "device", str, "profile", default="cpu"),
            batch_size=_get(obj, "batch_size", int, "profile", default=1),
            source=_get(obj, "source", str, "profile", default="measured"),
            layers=tuple(LayerProfile.from_json(x, f"profile.layers[{i}]") for i, x in enumerate(layers_raw)),
            provenance=read_provenance(obj, "profile"),
        )
        return profile.validate()

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ModelProfile:
        obj = read_json(path, "profile")
        try:
            return cls.from_json(obj)
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc}") from None
