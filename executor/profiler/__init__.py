"""Per-layer cost profiles of a `LayeredModel`: measured on a device, or a roofline estimate.

`profile_model` times each layer (warm-up, repeats, median); `roofline_profile` predicts the
times on a named device from analytic FLOPs and bytes (`ROOFLINE_DEVICES`). Both return the
planner's `ModelProfile`. FLOP counting rules are in `executor.profiler.flops` (SPEC §10.1).
"""

from executor.profiler.flops import FLOP_RULES, flop_rule
from executor.profiler.measure import profile_model
from executor.profiler.roofline import ROOFLINE_DEVICES, RooflineDevice, resolve_device, roofline_profile
from executor.profiler.trace import LayerCost, OpCost, activation_bytes, layer_flops, parameter_bytes, trace_layers

__all__ = [
    "FLOP_RULES",
    "ROOFLINE_DEVICES",
    "LayerCost",
    "OpCost",
    "RooflineDevice",
    "activation_bytes",
    "flop_rule",
    "layer_flops",
    "parameter_bytes",
    "profile_model",
    "resolve_device",
    "roofline_profile",
    "trace_layers",
]
