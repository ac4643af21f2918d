"""The roofline profiles shipped in `planner/builtin_profiles/` — data made by code.

`scripts/make_builtin_profiles.py` writes them; a test checks that the shipped files equal what
this module produces, so a change to a model, the FLOP rules or the device table that moves a
number must regenerate them. Names are `MODEL-DEVICE.json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from executor.models import build_model
from executor.profiler.roofline import roofline_profile
from planner.profile import ModelProfile

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "planner" / "builtin_profiles"


@dataclass(frozen=True)
class BuiltinSpec:
    """One shipped roofline profile: a model on a device with its input shape and class count.

    Its file is `planner/builtin_profiles/{model}-{device}.json`.
    """

    model: str
    device: str
    input_shape: tuple[int, ...]
    num_classes: int

    @property
    def filename(self) -> str:
        return f"{self.model}-{self.device}.json"


BUILTIN_SPECS: tuple[BuiltinSpec, ...] = (
    BuiltinSpec("mnistnet", "titan-xp", (1, 28, 28), 10),  # Ferret: MNIST/FMNIST/EMNIST
    BuiltinSpec("convnet", "titan-xp", (3, 32, 32), 10),  # Ferret: CIFAR-10, SVHN, CORe50
    BuiltinSpec("mlp", "titan-xp", (54,), 7),  # Ferret: Covertype
    BuiltinSpec("resnet18", "h100", (3, 224, 224), 10),  # Ferret: CLEAR-10
    BuiltinSpec("mobilenetv2", "h100", (3, 224, 224), 10),  # Ferret: CLEAR-10
    BuiltinSpec("resnet32", "a100", (3, 32, 32), 10),  # aL-SAR: CIFAR-10
)


def builtin_profile(spec: BuiltinSpec) -> ModelProfile:
    model = build_model(spec.model, spec.input_shape, spec.num_classes, seed=0)
    return roofline_profile(model, spec.device, batch_size=1)


def builtin_profiles() -> dict[str, ModelProfile]:
    """File name → profile, for every shipped profile."""
    return {spec.filename: builtin_profile(spec) for spec in BUILTIN_SPECS}
