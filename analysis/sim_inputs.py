"""CLI inputs shared by `ferret simulate` and `ferret whatif`: profiles and the twin's `SimConfig`.

A calibrated `SimConfig` comes from `--sim-config FILE`; each flag given on the command line
overrides that one field (human units here, seconds and bytes inside).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from analysis.units import cli_type, parse_bytes, parse_non_negative_float, parse_non_negative_int, parse_seconds
from sim.config import SimConfig


def _bandwidth(text: str) -> float:
    """`10GiB` or `10GiB/s` → bytes per second."""
    return float(parse_bytes(text.removesuffix("/s")))


def add_sim_config_arguments(parser: argparse.ArgumentParser) -> None:
    """SimConfig flags; an absent flag keeps the value of --sim-config or SimConfig's default."""
    group = parser.add_argument_group(
        "simulator model (an absent flag keeps --sim-config's value, else the default shown: the closed forms' regime)"
    )
    quiet = argparse.SUPPRESS  # not given → not in args → not an override
    group.add_argument("--sim-config", type=Path, default=quiet, help="SimConfig JSON (e.g. from `ferret calibrate`)")
    group.add_argument(
        "--exclusive-devices",
        action="store_true",
        default=quiet,
        help="one device per (worker, stage), ignoring the plan's placement (no contention); default off",
    )
    group.add_argument(
        "--concurrency",
        type=cli_type(parse_non_negative_int),
        default=quiet,
        help="ops a device runs at once; default 1",
    )
    group.add_argument(
        "--slowdown",
        type=cli_type(parse_non_negative_float),
        default=quiet,
        help="an op started beside m others takes 1 + slowdown·m times as long; default 0",
    )
    group.add_argument(
        "--op-overhead",
        type=cli_type(parse_seconds),
        default=quiet,
        help="fixed cost added to each op (20us); default 0",
    )
    group.add_argument(
        "--update-time", type=cli_type(parse_seconds), default=quiet, help="optimizer step time (50us); default 0"
    )
    group.add_argument(
        "--link-latency", type=cli_type(parse_seconds), default=quiet, help="latency between devices; default 0"
    )
    group.add_argument(
        "--link-bandwidth", type=cli_type(_bandwidth), default=quiet, help="link bandwidth (10GiB/s); default free"
    )
    group.add_argument(
        "--jitter",
        type=cli_type(parse_non_negative_float),
        default=quiet,
        help="log-std of a mean-1 log-normal op-time factor; default 0 (none)",
    )
    group.add_argument(
        "--input-buffer",
        type=cli_type(parse_non_negative_int),
        default=quiet,
        help="data that may wait in front of a worker / for a mini-batch; default: the strategy's",
    )
    group.add_argument(
        "--transient-memory",
        action="store_true",
        default=quiet,
        help="also count gradients, rebuilt activations, accumulation buffers; default off",
    )
    group.add_argument(
        "--optimizer-state-ratio",
        type=cli_type(parse_non_negative_float),
        default=quiet,
        help="optimizer bytes per weight byte (Adam 2); default 0",
    )
    group.add_argument(
        "--trace-memory", action="store_true", default=quiet, help="add a mem row per memory change; default off"
    )


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
    path = getattr(args, "sim_config", None)
    base = SimConfig.load(path) if path is not None else SimConfig()
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
