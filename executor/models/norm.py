"""Normalisation layers that work when the learner trains on one datum at a time.

OCL executors train with batch size 1, where BatchNorm's batch statistics are those of a single
image (and undefined on a 1×1 feature map). The models therefore take `norm=`:
- `group` (default for models trained from scratch): GroupNorm with `G` = the largest divisor of
  `C` that is ≤ 32 and ≤ C/2 (Wu & He 2018 use 32; ≥ 2 channels per group keeps a 1×1 map
  well-defined). Per-sample, so batch size does not matter.
- `instance`: GroupNorm with one channel per group (the DC ConvNet's "instancenorm").
- `frozen-batch` (default when pretrained `weights=` are given): BatchNorm that always uses its
  stored running statistics — eval-mode statistics in training too; only the affine scale and
  shift learn. This keeps ImageNet statistics of a pretrained model intact.
- `batch`: ordinary BatchNorm (needs mini-batches; kept for weight compatibility and batch runs).
- `none`: identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from planner.errors import FerretError

NORMS = ("group", "instance", "frozen-batch", "batch", "none")


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that normalises with its running statistics and never updates them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.running_mean is not None and self.running_var is not None
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def group_count(channels: int) -> int:
    return max(g for g in range(1, min(32, max(1, channels // 2)) + 1) if channels % g == 0)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "frozen-batch":
        return FrozenBatchNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise FerretError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")
