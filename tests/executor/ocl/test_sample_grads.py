"""Per-sample gradient entries read off one training backward equal per-row autograd, frozen or not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from executor.models import build_model
from executor.models.base import LayeredModel
from executor.ocl.sample_grads import SubsetGradients


def odd_convs() -> LayeredModel:
    """Strided, padded, dilated and grouped convs, then a linear layer, then the classifier."""
    layers = [
        ("a", nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU())),
        ("b", nn.Sequential(nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2), nn.ReLU())),
        ("c", nn.Sequential(nn.Flatten(), nn.Linear(6 * 4 * 4, 5), nn.ReLU())),
        ("classifier", nn.Sequential(nn.Linear(5, 3))),
    ]
    torch.manual_seed(0)
    return LayeredModel("odd", layers, (2, 8, 8), 3)


def per_row(model: nn.Module, grads: SubsetGradients, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row b's own loss differentiated through the same batched forward (a row-at-a-time forward
    can flip a ReLU whose input rounds to ±0 and differ for reasons unrelated to the method)."""
    losses = F.cross_entropy(model(x), y, reduction="none")
    weights = [t.module.weight for t in grads.targets]
    rows = []
    for b in range(x.shape[0]):
        per_weight = torch.autograd.grad(losses[b], weights, retain_graph=True)
        rows.append(torch.cat([g.flatten()[t.entries] for g, t in zip(per_weight, grads.targets, strict=True)]))
    return torch.stack(rows)


def test_targets_are_the_last_conv_to_run_in_each_layer():
    model = build_model("resnet32", (1, 8, 8), 3, seed=0)
    grads = SubsetGradients(model, fraction=1e-4, rng=np.random.default_rng(0))
    assert [t.layer for t in grads.targets] == list(range(16))  # stem and 15 blocks; not pool, classifier
    block = model.layers[6]  # layer2.0: its shortcut conv is registered last but runs first
    assert block.downsample is not None and grads.targets[6].module is block.conv2
    assert grads.size == 1 + 5 + 5 + 5 * 4  # ceil(1e-4 × 144, 2304, 9216, 36864)


@pytest.mark.parametrize("name", ["odd", "mnistnet", "resnet32"])
def test_entries_equal_per_row_autograd(name):
    model = odd_convs() if name == "odd" else build_model(name, (1, 8, 8), 3, seed=0)
    grads = SubsetGradients(model, fraction=0.01, rng=np.random.default_rng(0))
    assert all(len(t.entries) == -(-t.module.weight.numel() // 100) for t in grads.targets)  # 1 %, rounded up
    assert [t.layer for t in grads.targets] == [
        i for i, layer in enumerate(list(model.layers)[:-1]) if any(p.dim() > 1 for p in layer.parameters())
    ]
    x = torch.randn(5, *model.input_shape, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1])
    with grads.capture():
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    got, first = grads.gradients()
    assert first == 0 and got.shape == (5, grads.size)
    torch.testing.assert_close(got, per_row(model, grads, x, y), rtol=1e-4, atol=1e-6)
    expected_flops = 5 * sum(len(t.entries) * t.positions for t in grads.targets)
    assert grads.flops(5, 0) == expected_flops


def test_a_frozen_prefix_yields_only_the_suffix_columns():
    model = odd_convs()
    grads = SubsetGradients(model, fraction=0.01, rng=np.random.default_rng(0))
    x, y = torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 0])
    with grads.capture():
        loss = F.cross_entropy(model(x), y)
    suffix = [p for layer in list(model.layers)[2:] for p in layer.parameters()]
    torch.autograd.backward(loss, inputs=suffix)  # layers a and b frozen
    got, first = grads.gradients()
    target_c = grads.targets[2]
    assert first == target_c.columns.start and got.shape == (4, grads.size - first)
    full = per_row(model, grads, x, y)
    torch.testing.assert_close(got, full[:, first:], rtol=1e-4, atol=1e-6)
    assert grads.flops(4, first) == 4 * len(target_c.entries) * target_c.positions
    # Nothing captured outside `capture()`, and a read forgets what was captured.
    assert grads.gradients()[0].numel() == 0
