"""MNISTNet: the two-conv network of PyTorch's MNIST example, adapted to any image size."""

from __future__ import annotations

from torch import nn

from executor.models.base import LayeredModel, flat_size
from executor.models.registry import register_model


@register_model("mnistnet", default_input_shape=(1, 28, 28))
def build_mnistnet(input_shape: tuple[int, ...], num_classes: int) -> LayeredModel:
    """conv(32,3) → conv(64,3)+maxpool(2) → fc(128) → classifier; one planner layer each.

    Dropout is left out: OCL trains on single samples and the executors must be bit-exact
    reproducible from a seed.
    """
    if len(input_shape) != 3:
        raise ValueError(f"mnistnet needs a (C, H, W) input shape, got {input_shape}")
    channels, height, width = input_shape
    if min(height, width) < 6:
        raise ValueError(f"mnistnet needs images of at least 6×6, got {height}×{width}")
    conv1 = nn.Sequential(nn.Conv2d(channels, 32, 3), nn.ReLU())
    conv2 = nn.Sequential(nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2))
    features = flat_size(nn.Sequential(conv1, conv2), input_shape)
    fc1 = nn.Sequential(nn.Flatten(), nn.Linear(features, 128), nn.ReLU())
    classifier = nn.Sequential(nn.Linear(128, num_classes))
    layers = [("conv1", conv1), ("conv2", conv2), ("fc1", fc1), ("classifier", classifier)]
    return LayeredModel("mnistnet", layers, input_shape, num_classes)
