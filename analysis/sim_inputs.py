"""The twin's `SimConfig` on the command line (`ferret simulate`, `whatif`, `run --plan`), and
its fitted cost model (`--costs`: `ferret simulate`, `whatif` and `run --plan`).

A calibrated `SimConfig` comes from `--sim-config FILE`; each flag given on the command line
overrides that one field (human units here, seconds and bytes inside). The flags are made from
`SimConfig`'s fields (analysis/config_args.py), so a new field gets its flag where it is declared.
`--costs FILE` is `ferret calibrate`'s costs.json: per-layer times, recompute's own, overhead,
optimizer step, link and the measured op-time factors a calibrated `jitter = "empirical"` draws
from (a sim_config.json fitted on real-time runs says `empirical`: it needs its costs.json).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from analysis.config_args import add_config_arguments, config_values, given_flags, section
from planner.profile import ModelProfile
from sim.config import SimConfig
from sim.fitted_costs import LayerCosts

SIM_TITLE = (
    "simulator model (an absent flag keeps --sim-config's value, else the default shown: the closed forms' regime)"
)


def add_sim_config_arguments(parser: argparse.ArgumentParser) -> None:
    """SimConfig flags; an absent flag keeps the value of --sim-config or SimConfig's default."""
    section(parser, SIM_TITLE).add_argument(
        "--sim-config",
        type=Path,
        default=argparse.SUPPRESS,
        help="SimConfig JSON (e.g. from `ferret calibrate`)",
    )
    add_config_arguments(parser, SimConfig, title=SIM_TITLE, override=True)


def sim_config_from_args(args: argparse.Namespace) -> SimConfig:
    path = getattr(args, "sim_config", None)
    base = SimConfig.load(path) if path is not None else SimConfig()
    changes: dict[str, Any] = config_values(args, SimConfig)
    if "jitter_sigma" in changes:
        changes["jitter"] = "lognormal" if changes["jitter_sigma"] > 0 else "none"
        changes.setdefault("jitter_block", 1)  # a calibration's blocks of measured factors go with them
    return dataclasses.replace(base, **changes) if changes else base


def given_sim_flags(args: argparse.Namespace) -> list[str]:
    """The simulator flags on the command line, `--sim-config` first."""
    return (["--sim-config"] if hasattr(args, "sim_config") else []) + given_flags(args, SimConfig, override=True)


def add_costs_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--costs",
        type=Path,
        default=None,
        help="costs.json from `ferret calibrate`: the fitted cost model (per-layer times, recompute's own, "
        "overhead, optimizer step, link, measured op-time factors) instead of the profile's times and the "
        "simulator model's timing fields",
    )


def costs_from_args(args: argparse.Namespace, profile: ModelProfile | None = None) -> LayerCosts | None:
    """`--costs`, checked against the profile it is used with (None when not given; no profile: a
    run that profiles its model later checks it then)."""
    if args.costs is None:
        return None
    costs = LayerCosts.load(args.costs)
    return costs if profile is None else costs.check(profile)
