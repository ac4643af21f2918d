"""What every command writes beside its outputs: `config.json` and `summary.json`, atomically.

A folder output holds them by those names; a single-file output `p.json` (profile, plan) has
them as its siblings `p.config.json` and `p.summary.json` (`write_siblings`), so that a file
output never touches another file of its folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

from planner.fileio import atomic_write_json
from planner.output_safety import siblings


def resolved_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """The command's resolved arguments (internal keys dropped) plus provenance."""
    config = {k: _jsonable(v) for k, v in sorted(vars(args).items()) if not k.startswith("_")}
    config.update({k: _jsonable(v) for k, v in extra.items()})
    config["ferret_version"] = ferret_version()
    config["python"] = platform.python_version()
    return config


def write_config(directory: str | Path, args: argparse.Namespace, **extra: Any) -> None:
    atomic_write_json(Path(directory) / "config.json", resolved_config(args, **extra))


def write_summary(directory: str | Path, summary: dict[str, Any]) -> None:
    write_json(Path(directory) / "summary.json", summary)


def write_json(path: str | Path, obj: Any) -> None:
    """`obj` as JSON, atomically; non-finite floats become null."""
    atomic_write_json(path, _jsonable(obj))


def write_siblings(stage: Path, out: Path, args: argparse.Namespace, summary: dict[str, Any], **extra: Any) -> None:
    """The config and summary of the single-file output `out`, into its staging folder."""
    config_path, summary_path = siblings(out)
    atomic_write_json(stage / config_path.name, resolved_config(args, **extra))
    atomic_write_json(stage / summary_path.name, _jsonable(summary))


def _jsonable(value: Any) -> Any:
    """Paths to strings, numpy scalars to Python, non-finite floats to null (JSON has no inf)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return json.loads(json.dumps(value, default=str))


_DIST_INFO = ("ferret_ocl-", ".dist-info")  # the installed package's metadata folder: NAME-VERSION.dist-info


def ferret_version() -> str:
    """The installed package's version: read from the name of the first `ferret_ocl-VERSION.dist-info`
    on `sys.path`, which is where `importlib.metadata` would read it — importing that module costs
    30–100 ms of every command's start. Anything else (an egg-info install) asks `importlib.metadata`."""
    prefix, suffix = _DIST_INFO
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith(prefix) and name.endswith(suffix):
                return name[len(prefix) : -len(suffix)]
    from importlib import metadata

    try:
        return metadata.version("ferret-ocl")
    except metadata.PackageNotFoundError:
        return "unknown"
