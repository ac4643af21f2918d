"""Residual building blocks, named like torchvision's so its state dicts map onto them.

Each block declares the arithmetic it does itself (the residual add) through
`extra_forward_flops`, which the profiler's FLOP counter adds to its leaf ops.
"""

from __future__ import annotations

import torch
from torch import nn

from executor.models.norm import make_norm


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """He et al. 2016: two 3×3 convs and an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = make_norm(norm, cout)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = make_norm(norm, cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(conv1x1(cin, cout, stride), make_norm(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

    def extra_forward_flops(self, output: torch.Tensor) -> int:
        return output.numel()  # the residual add


def conv_norm_act(cin: int, cout: int, kernel: int, stride: int, norm: str, groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation with ReLU6: keys `0` (conv), `1` (norm)."""
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
    return nn.Sequential(conv, make_norm(norm, cout), nn.ReLU6(inplace=False))


class InvertedResidual(nn.Module):
    """Sandler et al. 2018: 1×1 expand → 3×3 depth-wise → 1×1 linear project (+ shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int, norm: str) -> None:
        super().__init__()
        hidden = cin * expand_ratio
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(cin, hidden, 1, 1, norm))
        layers += [
            conv_norm_act(hidden, hidden, 3, stride, norm, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            make_norm(norm, cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out

    def extra_forward_flops(self, output: torch.Tensor) -> int:
        return output.numel() if self.use_res_connect else 0
