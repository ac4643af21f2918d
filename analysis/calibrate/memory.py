"""The twin's memory model for the measured runs: read from how they ran, not fitted.

Memory does not scatter like time: what a run holds follows from its optimizer and compensator.
Adam keeps two weight-sized buffers per stage (`optimizer_state_ratio` 2), SGD with momentum one,
plain SGD none; λ auto-tuning of the Fisher compensators keeps two more (`compensation_buffers`).
A twin folder says its own `sim_config`. Runs that disagree are refused: one twin cannot be both.
"""

from __future__ import annotations

from typing import Any

from analysis.run_folder import RunFolder
from planner.errors import FerretError

FIELDS = ("optimizer_state_ratio", "compensation_buffers", "transient_memory")
FISHER = ("fisher", "iter-fisher")


def memory_model(folder: RunFolder) -> dict[str, Any]:
    if folder.source == "twin":
        own = folder.config.get("sim_config") or {}
        return {key: own[key] for key in FIELDS if key in own}
    config, summary = folder.config, folder.summary
    optimizer = str(config.get("optimizer", "adam")).lower()
    momentum = float(config.get("momentum") or 0.0)
    ratio = 2.0 if optimizer == "adam" else 1.0 if momentum > 0 else 0.0
    compensation = summary.get("compensation_config") or {}
    tuned = compensation.get("name") in FISHER and float(compensation.get("eta_lambda") or 0.0) > 0
    return {"optimizer_state_ratio": ratio, "compensation_buffers": 2 if tuned else 0}


def common_memory_model(folders: list[RunFolder]) -> dict[str, Any]:
    models = [memory_model(f) for f in folders]
    for folder, model in zip(folders[1:], models[1:], strict=True):
        if model != models[0]:
            raise FerretError(
                f"{folder.path} ran with another memory model ({model}) than {folders[0].path} ({models[0]}); "
                "calibrate runs of one optimizer and compensator together"
            )
    return models[0]
