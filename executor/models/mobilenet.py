"""MobileNetV2 (Sandler et al., CVPR 2018) with inverted-residual blocks as planner layers.

Stem conv 3×3/2 (32 ch) → 17 inverted residuals (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2)
(6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1) → 1×1 conv to 1280 + global pool → linear; ReLU6
throughout. Layers 0–18 mirror torchvision's `features[0..18]` key for key, so its state dict
loads with `weights=PATH`. Inputs smaller than 64 px use stride 1 in the stem and in the first
24-channel block (the CIFAR adaptation of kuangliu/pytorch-cifar); weights are unaffected.
torchvision's classifier dropout is left out: runs must be bit-exact reproducible from a seed.
"""

from __future__ import annotations

from torch import nn

from executor.models.base import LayeredModel
from executor.models.blocks import InvertedResidual, conv_norm_act
from executor.models.registry import register_model
from executor.models.weights import register_key_map

SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@register_model("mobilenetv2", default_input_shape=(3, 224, 224))
def build_mobilenetv2(input_shape: tuple[int, ...], num_classes: int, norm: str = "group") -> LayeredModel:
    if len(input_shape) != 3:
        raise ValueError(f"mobilenetv2 needs a (C, H, W) input shape, got {input_shape}")
    small = min(input_shape[1:]) < 64
    layers: list[tuple[str, nn.Module]] = [("stem", conv_norm_act(input_shape[0], 32, 3, 1 if small else 2, norm))]
    cin = 32
    for t, c, n, s in SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            if small and c == 24:
                stride = 1
            layers.append((f"block{len(layers)}", InvertedResidual(cin, c, stride, t, norm)))
            cin = c
    head = conv_norm_act(cin, 1280, 1, 1, norm)
    head.append(nn.AdaptiveAvgPool2d(1))
    head.append(nn.Flatten())
    layers.append(("head", head))
    layers.append(("classifier", nn.Sequential(nn.Linear(1280, num_classes))))
    return LayeredModel("mobilenetv2", layers, input_shape, num_classes)


@register_key_map("mobilenetv2")
def torchvision_mobilenetv2_key(key: str) -> str:
    """torchvision `mobilenet_v2().state_dict()` key → this model's key."""
    if key.startswith("features."):
        return "layers." + key.removeprefix("features.")
    if key.startswith("classifier.1."):
        return "layers.19.0." + key.removeprefix("classifier.1.")
    return key
