"""The twin's memory model for the measured runs: read from how they ran, not fitted.

Memory does not scatter like time: what a run holds follows from its optimizer and compensator.
Adam keeps two weight-sized buffers per stage (`optimizer_state_ratio` 2), SGD with momentum one,
plain SGD none; the compensator says how many more it keeps (`compensation_buffers`: Iter-Fisher's
λ auto-tuning two, Gap-Aware one — executor.compensation.compensation_buffers).
A twin folder says its own `sim_config`. Runs that disagree are refused: one twin cannot be both.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from analysis.run_folder import RunFolder
from executor.compensation import CompensationConfig, compensation_buffers
from planner.errors import FerretError

FIELDS = ("optimizer_state_ratio", "compensation_buffers", "transient_memory")


def memory_model(folder: RunFolder) -> dict[str, Any]:
    if folder.source == "twin":
        own = folder.config.get("sim_config") or {}
        return {key: own[key] for key in FIELDS if key in own}
    config, summary = folder.config, folder.summary
    optimizer = str(config.get("optimizer", "adam")).lower()
    momentum = float(config.get("momentum") or 0.0)
    ratio = 2.0 if optimizer == "adam" else 1.0 if momentum > 0 else 0.0
    fields = {f.name for f in dataclasses.fields(CompensationConfig)}
    compensation = {k: v for k, v in (summary.get("compensation_config") or {}).items() if k in fields}
    return {
        "optimizer_state_ratio": ratio,
        "compensation_buffers": compensation_buffers(CompensationConfig(**compensation)),
    }


def common_memory_model(folders: list[RunFolder]) -> dict[str, Any]:
    models = [memory_model(f) for f in folders]
    for folder, model in zip(folders[1:], models[1:], strict=True):
        if model != models[0]:
            raise FerretError(
                f"{folder.path} ran with another memory model ({model}) than {folders[0].path} ({models[0]}); "
                "calibrate runs of one optimizer and compensator together"
            )
    return models[0]
