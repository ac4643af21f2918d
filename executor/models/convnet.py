"""ConvNet: the small CIFAR CNN of Dataset Condensation (Zhao, Mopuri & Bilen, ICLR 2021).

`depth` blocks of conv 3×3 (`width` channels, padding 1) → norm → ReLU → 2×2 average pool, then
a linear classifier; one planner layer per block. On 32×32 inputs with the defaults this is the
DC ConvNet exactly (128·4·4 features into the classifier, instance norm). A block pools only
while the map is at least 4×4, so 8×8 digits end at 2×2 rather than at a 1×1 map on which
instance norm would erase every feature.
"""

from __future__ import annotations

from torch import nn

from executor.models.base import LayeredModel, flat_size
from executor.models.norm import make_norm
from executor.models.registry import register_model


@register_model("convnet", default_input_shape=(3, 32, 32))
def build_convnet(
    input_shape: tuple[int, ...], num_classes: int, width: int = 128, depth: int = 3, norm: str = "instance"
) -> LayeredModel:
    if len(input_shape) != 3:
        raise ValueError(f"convnet needs a (C, H, W) input shape, got {input_shape}")
    if width < 1 or depth < 1:
        raise ValueError(f"convnet needs width ≥ 1 and depth ≥ 1, got {width}, {depth}")
    channels, height, width_px = input_shape
    layers: list[tuple[str, nn.Module]] = []
    for i in range(depth):
        block: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), make_norm(norm, width), nn.ReLU()]
        if min(height, width_px) >= 4:
            block.append(nn.AvgPool2d(2))
            height, width_px = height // 2, width_px // 2
        layers.append((f"block{i + 1}", nn.Sequential(*block)))
        channels = width
    features = flat_size(nn.Sequential(*(m for _, m in layers)), input_shape)
    layers.append(("classifier", nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))))
    return LayeredModel("convnet", layers, input_shape, num_classes)
