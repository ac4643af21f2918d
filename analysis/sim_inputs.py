"""CLI inputs shared by `ferret simulate` and `ferret whatif`: profiles and the twin's `SimConfig`.

A calibrated `SimConfig` comes from `--sim-config FILE`; each flag given on the command line
overrides that one field (human units here, seconds and bytes inside).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from analysis.units import cli_type, parse_bytes, parse_seconds
from planner.builtin import resolve_profile
from planner.profile import ModelProfile
from sim.config import SimConfig


def load_profile_arg(spec: str) -> ModelProfile:
    """A profile from a JSON path, or `builtin:NAME` for a profile shipped with the planner."""
    return resolve_profile(spec)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"invalid number {text!r}") from None
    if not value >= 0:
        raise ValueError(f"invalid number {text!r}: must be ≥ 0")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"invalid count {text!r} (expected an integer ≥ 0)") from None
    if value < 0:
        raise ValueError(f"invalid count {text!r}: must be ≥ 0")
    return value


def _bandwidth(text: str) -> float:
    """`10GiB` or `10GiB/s` → bytes per second."""
    return float(parse_bytes(text.removesuffix("/s")))


def add_sim_config_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("simulator model (defaults: the closed forms' regime, or --sim-config)")
    group.add_argument("--sim-config", type=Path, default=None, help="SimConfig JSON (e.g. from `ferret calibrate`)")
    group.add_argument(
        "--exclusive-devices",
        action="store_true",
        default=None,
        help="one device per (worker, stage), ignoring the plan's placement (no contention)",
    )
    group.add_argument(
        "--concurrency", type=cli_type(_non_negative_int), default=None, help="ops a device runs at once"
    )
    group.add_argument(
        "--slowdown",
        type=cli_type(_non_negative_float),
        default=None,
        help="stretch of an op per other op running beside it",
    )
    group.add_argument(
        "--op-overhead", type=cli_type(parse_seconds), default=None, help="fixed cost added to each op, e.g. 20us"
    )
    group.add_argument(
        "--update-time", type=cli_type(parse_seconds), default=None, help="optimizer step time, e.g. 50us"
    )
    group.add_argument(
        "--link-latency", type=cli_type(parse_seconds), default=None, help="latency of a transfer between devices"
    )
    group.add_argument("--link-bandwidth", type=cli_type(_bandwidth), default=None, help="link bandwidth, e.g. 10GiB/s")
    group.add_argument(
        "--jitter",
        type=cli_type(_non_negative_float),
        default=None,
        help="log-std of a mean-1 log-normal op-time jitter",
    )
    group.add_argument(
        "--input-buffer", type=cli_type(_non_negative_int), default=None, help="data that may wait in front of a worker"
    )
    group.add_argument(
        "--transient-memory", action="store_true", default=None, help="also count gradients and rebuilt activations"
    )
    group.add_argument(
        "--optimizer-state-ratio",
        type=cli_type(_non_negative_float),
        default=None,
        help="optimizer bytes per weight byte",
    )
    group.add_argument("--trace-memory", action="store_true", default=None, help="add a mem row per memory change")


_FLAG_FIELDS = {
    "exclusive_devices": "exclusive_devices",
    "concurrency": "concurrency",
    "slowdown": "slowdown",
    "op_overhead": "op_overhead_s",
    "update_time": "update_s",
    "link_latency": "link_latency_s",
    "link_bandwidth": "link_bandwidth_Bps",
    "input_buffer": "input_buffer",
    "transient_memory": "transient_memory",
    "optimizer_state_ratio": "optimizer_state_ratio",
    "trace_memory": "trace_memory",
}


def sim_config_from_args(args: argparse.Namespace, **overrides: Any) -> SimConfig:
    base = SimConfig.load(args.sim_config) if args.sim_config is not None else SimConfig()
    changes: dict[str, Any] = {}
    for flag, name in _FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            changes[name] = value
    if getattr(args, "jitter", None) is not None:
        changes["jitter"] = "lognormal" if args.jitter > 0 else "none"
        changes["jitter_sigma"] = args.jitter
    changes.update(overrides)
    return dataclasses.replace(base, **changes) if changes else base
