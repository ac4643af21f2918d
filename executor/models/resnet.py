"""ResNets with residual blocks as planner layers (He et al., CVPR 2016).

- `resnet32`: the CIFAR ResNet of §4.2 — a 3×3 stem of 16 channels, 3 stages × 5 basic blocks
  of 16/32/64 channels (stride 2 entering stages 2 and 3), global average pool, linear
  classifier. Shortcuts that change shape use a 1×1 projection (option B).
- `resnet18`: the ImageNet ResNet-18 — 7×7/2 stem + 3×3/2 max-pool, 4 stages × 2 basic blocks
  of 64/128/256/512 channels. For inputs smaller than 64 px the stem is the CIFAR one (3×3/1,
  no max-pool), which keeps 32×32 and 8×8 maps from vanishing; `stem=` forces either.
Layer names follow torchvision (`stem`, `layer1.0`, …) and the module tree mirrors it, so a
torchvision ResNet-18 state dict loads with `weights=PATH` (see `executor.models.weights`).
"""

from __future__ import annotations

from torch import nn

from executor.models.base import LayeredModel
from executor.models.blocks import BasicBlock, conv3x3
from executor.models.norm import make_norm
from executor.models.registry import register_model
from executor.models.weights import register_key_map


def _pool_and_classifier(channels: int, num_classes: int) -> list[tuple[str, nn.Module]]:
    return [
        ("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
        ("classifier", nn.Sequential(nn.Linear(channels, num_classes))),
    ]


def _stages(
    widths: tuple[int, ...], blocks: int, cin: int, norm: str, first_stride: int = 1
) -> list[tuple[str, nn.Module]]:
    layers: list[tuple[str, nn.Module]] = []
    for s, width in enumerate(widths):
        for b in range(blocks):
            stride = (first_stride if s == 0 else 2) if b == 0 else 1
            layers.append((f"layer{s + 1}.{b}", BasicBlock(cin, width, stride, norm)))
            cin = width
    return layers


def _check_image(name: str, input_shape: tuple[int, ...]) -> None:
    if len(input_shape) != 3:
        raise ValueError(f"{name} needs a (C, H, W) input shape, got {input_shape}")


@register_model("resnet32", default_input_shape=(3, 32, 32))
def build_resnet32(input_shape: tuple[int, ...], num_classes: int, norm: str = "group") -> LayeredModel:
    _check_image("resnet32", input_shape)
    stem = nn.Sequential(conv3x3(input_shape[0], 16), make_norm(norm, 16), nn.ReLU())
    layers = [("stem", stem), *_stages((16, 32, 64), 5, 16, norm), *_pool_and_classifier(64, num_classes)]
    return LayeredModel("resnet32", layers, input_shape, num_classes)


@register_model("resnet18", default_input_shape=(3, 224, 224))
def build_resnet18(
    input_shape: tuple[int, ...], num_classes: int, norm: str = "group", stem: str = "auto"
) -> LayeredModel:
    _check_image("resnet18", input_shape)
    if stem == "auto":
        stem = "imagenet" if min(input_shape[1:]) >= 64 else "cifar"
    channels = input_shape[0]
    if stem == "imagenet":
        conv = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
        stem_layer = nn.Sequential(conv, make_norm(norm, 64), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
    elif stem == "cifar":
        stem_layer = nn.Sequential(conv3x3(channels, 64), make_norm(norm, 64), nn.ReLU())
    else:
        raise ValueError(f"resnet18 stem must be auto, imagenet or cifar, got {stem!r}")
    layers = [("stem", stem_layer), *_stages((64, 128, 256, 512), 2, 64, norm), *_pool_and_classifier(512, num_classes)]
    return LayeredModel("resnet18", layers, input_shape, num_classes)


@register_key_map("resnet18")
def torchvision_resnet18_key(key: str) -> str:
    """torchvision `resnet18().state_dict()` key → this model's key."""
    head, _, rest = key.partition(".")
    if head == "conv1":
        return f"layers.0.0.{rest}"
    if head == "bn1":
        return f"layers.0.1.{rest}"
    if head == "fc":
        return f"layers.10.0.{rest}"
    if head.startswith("layer") and head[5:].isdigit():
        block, _, tail = rest.partition(".")
        return f"layers.{1 + 2 * (int(head[5:]) - 1) + int(block)}.{tail}"
    return key
