"""Pretrained weights from a local file (`build_model(..., weights=PATH)`); nothing downloads.

A file holds a state dict (`torch.save(model.state_dict(), PATH)`, optionally wrapped as
`{"state_dict": ...}` or `{"model": ...}`, optionally with DataParallel's `module.` prefix)
either in this project's naming (`layers.N....`) or in torchvision's naming for the models that
registered a key map (resnet18, mobilenetv2). Every tensor must land on a parameter or buffer
of the same shape, and every parameter and buffer must be given — except the classifier, which
is kept at its initialisation when its shape differs (a stream's class count rarely equals the
pre-training one). Anything else is a `FerretError` naming the file and the offending keys.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from executor.models.base import LayeredModel
from planner.errors import FerretError
from planner.registry import Registry

KeyMap = Callable[[str], str]
KEY_MAPS: Registry[KeyMap] = Registry("key map")
register_key_map = KEY_MAPS.register


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FerretError(f"weights file not found: {path}")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise FerretError(
            f"cannot read weights {path}: not a torch.save file of tensors ({type(exc).__name__})"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FerretError(f"weights {path} do not hold a state dict (a mapping of names to tensors)")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def _short(keys: list[str]) -> str:
    return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")


def load_weights(model: LayeredModel, path: str | Path) -> None:
    """Load a local state dict into `model` in place (see the module doc for the rules)."""
    p = Path(path).expanduser()
    state = _read_state(p)
    if not any(k.startswith("layers.") for k in state):
        key_map = KEY_MAPS.get(model.name)
        if key_map is None:
            raise FerretError(f"weights {p}: keys are not in this project's naming (layers.N...) for {model.name}")
        state = {key_map(k): v for k, v in state.items()}
    own = model.state_dict()
    head = f"layers.{model.num_layers - 1}."
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        hint = (
            " (BatchNorm statistics: build with norm='frozen-batch' or 'batch')"
            if any(k.endswith(("running_mean", "running_var")) for k in unexpected)
            else ""
        )
        raise FerretError(f"weights {p} have keys {model.name} lacks: {_short(unexpected)}{hint}")
    missing = sorted(k for k in set(own) - set(state) if not k.startswith(head))
    if missing:
        raise FerretError(f"weights {p} lack keys of {model.name}: {_short(missing)}")
    merged = dict(own)
    for key, tensor in state.items():
        if tensor.shape != own[key].shape:
            if key.startswith(head):
                continue  # different class count: keep the fresh classifier
            raise FerretError(
                f"weights {p}: {key} has shape {tuple(tensor.shape)}, {model.name} expects {tuple(own[key].shape)}"
            )
        merged[key] = tensor.to(own[key].dtype)
    model.load_state_dict(merged, strict=True)
