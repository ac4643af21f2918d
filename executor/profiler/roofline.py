"""Roofline profiles: per-layer times for a device the user does not have (SPEC §10.1 FLOPs).

Each op of a layer (from `trace_layers`) costs
    t_op = max(MACs / peak_MACs_per_s, bytes_moved / bandwidth) + launch_overhead
and a layer's time is the sum over its ops. The backward of an op does 2× the forward FLOPs
(SPEC §10.1) and moves 2× its bytes (reads the saved input and the output gradient, writes
the input gradient and, for weighted ops, reads the weights and writes their gradient); an op
with weights launches two kernels backward (input- and weight-gradient), any other op one.

SPEC counts a multiply–accumulate as one FLOP, but vendors quote peak FLOP/s with an FMA as
two; the table keeps the datasheet number and the model divides it by 2. Sources for every
row are in docs/workloads.md. The roofline is an optimistic bound (peak never sustained);
`ferret calibrate` fits the gap from measured traces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from executor.models.base import LayeredModel
from executor.profiler.trace import LayerCost, OpCost, check_batch_fits, model_provenance, trace_layers
from planner.errors import FerretError
from planner.profile import LayerProfile, ModelProfile
from planner.registry import Registry


@dataclass(frozen=True)
class RooflineDevice:
    """A device the roofline prices: fp32 peak FLOP/s, memory bandwidth (bytes/s), launch overhead (s).

    Peaks must be positive and the overhead non-negative (`FerretError`).
    """

    name: str
    peak_flops_per_s: float  # datasheet fp32 peak, FMA = 2 FLOPs
    bandwidth_bytes_per_s: float  # peak device-memory bandwidth
    launch_overhead_s: float  # per kernel: framework dispatch + launch latency
    description: str = ""

    def __post_init__(self) -> None:
        for key in ("peak_flops_per_s", "bandwidth_bytes_per_s"):
            if not getattr(self, key) > 0:
                raise FerretError(f"roofline device {self.name!r}: {key} must be positive")
        if not self.launch_overhead_s >= 0:
            raise FerretError(f"roofline device {self.name!r}: launch_overhead_s must be ≥ 0")

    @property
    def peak_macs_per_s(self) -> float:
        return self.peak_flops_per_s / 2


ROOFLINE_DEVICES: Registry[RooflineDevice] = Registry(
    "roofline device",
    {
        d.name: d
        for d in (
            RooflineDevice("h100", 66.9e12, 3.35e12, 5e-6, "NVIDIA H100 SXM5 80GB (HBM3)"),
            RooflineDevice("a100", 19.5e12, 2.039e12, 5e-6, "NVIDIA A100 SXM4 80GB (HBM2e)"),
            RooflineDevice("titan-xp", 12.15e12, 547.7e9, 5e-6, "NVIDIA TITAN Xp (Pascal GP102, GDDR5X)"),
            RooflineDevice("cpu", 768e9, 51.2e9, 2e-6, "8-core AVX2/FMA CPU at 3 GHz, dual-channel DDR4-3200"),
        )
    },
    message="unknown {kind} {name!r}; choose one of {choices} or give peak=FLOPS,bw=BYTES_PER_S[,launch=TIME], "
    "e.g. peak=19.5T,bw=2T,launch=5us",
)

_CUSTOM_KEYS = {"peak": "peak_flops_per_s", "bw": "bandwidth_bytes_per_s", "launch": "launch_overhead_s"}
_SI = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def resolve_device(spec: str | RooflineDevice) -> RooflineDevice:
    """A table name (`h100`) or a custom `peak=19.5T,bw=2T,launch=5us` (FLOP/s, B/s, s)."""
    if isinstance(spec, RooflineDevice):
        return spec
    key = spec.strip().lower()
    if "=" not in key:
        return ROOFLINE_DEVICES[key]
    values: dict[str, float] = {"launch_overhead_s": 5e-6}
    for part in key.split(","):
        name, _, text = part.partition("=")
        field = _CUSTOM_KEYS.get(name.strip())
        if field is None:
            raise FerretError(f"roofline spec {spec!r}: unknown key {name.strip()!r} (use peak, bw, launch)")
        values[field] = _parse_quantity(text.strip(), spec, time=field == "launch_overhead_s")
    missing = [k for k, f in _CUSTOM_KEYS.items() if f not in values]
    if missing:
        raise FerretError(f"roofline spec {spec!r}: missing {', '.join(missing)}")
    return RooflineDevice(
        f"custom({key})", values["peak_flops_per_s"], values["bandwidth_bytes_per_s"], values["launch_overhead_s"]
    )


def _parse_quantity(text: str, spec: str, *, time: bool) -> float:
    match = re.fullmatch(r"([0-9.]+(?:e[+-]?\d+)?)\s*([a-z]*)", text)
    table = _TIME if time else _SI
    unit = match.group(2) if match else ""
    if not match or unit not in table:
        raise FerretError(f"roofline spec {spec!r}: cannot read {text!r}")
    return float(match.group(1)) * table[unit]


def op_time(op: OpCost, device: RooflineDevice, *, backward: bool = False) -> float:
    factor = 2 if backward else 1
    compute = factor * op.flops / device.peak_macs_per_s
    memory = factor * op.bytes_moved / device.bandwidth_bytes_per_s
    launches = 2 if backward and op.param_bytes else 1
    return max(compute, memory) + launches * device.launch_overhead_s


def layer_times(cost: LayerCost, device: RooflineDevice) -> tuple[float, float]:
    fwd = sum(op_time(op, device) for op in cost.ops)
    bwd = sum(op_time(op, device, backward=True) for op in cost.ops)
    return fwd, bwd


def roofline_profile(model: LayeredModel, device: str | RooflineDevice, *, batch_size: int = 1) -> ModelProfile:
    """A `ModelProfile` (source="roofline") of `model` on a named or custom device."""
    dev = resolve_device(device)
    check_batch_fits(model, batch_size)
    layers = []
    for cost in trace_layers(model, batch_size):
        fwd, bwd = layer_times(cost, dev)
        layers.append(LayerProfile(cost.name, fwd, bwd, cost.param_bytes, cost.out_bytes, cost.flops))
    return ModelProfile(
        model.name,
        tuple(layers),
        device=dev.name,
        batch_size=batch_size,
        source="roofline",
        provenance=model_provenance(model),
    ).validate()
