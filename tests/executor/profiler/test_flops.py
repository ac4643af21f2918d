"""Analytic FLOPs (SPEC §10.1) equal hand counts for known layers and small models."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from executor.models import LayeredModel, build_model
from executor.models.blocks import BasicBlock
from executor.profiler import layer_flops, trace_layers


def single(module: nn.Module, input_shape, num_classes: int = 2) -> LayeredModel:
    return LayeredModel("t", [("only", module)], input_shape, num_classes)


def test_conv_is_k2_cin_cout_hout_wout_plus_bias():
    # 3×3 conv, 4 → 8 channels, stride 2, padding 1 on 10×10: out 5×5.
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=True)
    assert layer_flops(single(conv, (4, 10, 10))) == [9 * 4 * 8 * 5 * 5 + 8 * 5 * 5]
    no_bias = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
    assert layer_flops(single(no_bias, (4, 10, 10))) == [9 * 4 * 8 * 25]


def test_grouped_and_depthwise_conv_divide_by_groups():
    grouped = nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False)
    assert layer_flops(single(grouped, (8, 6, 6))) == [9 * 2 * 16 * 36]
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    assert layer_flops(single(depthwise, (8, 6, 6))) == [9 * 1 * 8 * 36]


def test_linear_norm_relu_pool_rules():
    assert layer_flops(single(nn.Linear(20, 7), (20,))) == [20 * 7 + 7]
    assert layer_flops(single(nn.Linear(20, 7, bias=False), (20,))) == [140]
    assert layer_flops(single(nn.BatchNorm2d(3), (3, 4, 4))) == [48]
    assert layer_flops(single(nn.GroupNorm(1, 3), (3, 4, 4))) == [48]
    assert layer_flops(single(nn.ReLU(), (3, 4, 4))) == [48]
    # Max-pool 2×2 on 3×4×4 → 3×2×2 outputs, 4 window elements each.
    assert layer_flops(single(nn.MaxPool2d(2), (3, 4, 4))) == [4 * 12]
    assert layer_flops(single(nn.AvgPool2d(3, stride=1), (1, 5, 5))) == [9 * 9]
    # Adaptive average pooling reads every input element once.
    assert layer_flops(single(nn.AdaptiveAvgPool2d(1), (3, 4, 4))) == [48]
    assert layer_flops(single(nn.Flatten(), (3, 4, 4))) == [0]


def test_residual_block_counts_its_add():
    block = BasicBlock(4, 4, 1, "none")
    conv = 9 * 4 * 4 * 36  # 3×3, 4→4 channels, 6×6 map, no bias
    relu = 4 * 36
    add = 4 * 36
    assert layer_flops(single(block, (4, 6, 6))) == [2 * conv + 2 * relu + add]
    # With a projection shortcut: a 1×1 conv 4→8 at stride 2 (3×3 map).
    down = BasicBlock(4, 8, 2, "none")
    conv1, conv2, proj = 9 * 4 * 8 * 9, 9 * 8 * 8 * 9, 4 * 8 * 9
    assert layer_flops(single(down, (4, 6, 6))) == [conv1 + conv2 + proj + 2 * 72 + 72]


def test_mnistnet_by_hand():
    model = build_model("mnistnet", (1, 28, 28), 10, seed=0)
    conv1 = 9 * 1 * 32 * 26 * 26 + 32 * 26 * 26 + 32 * 26 * 26  # conv + bias + relu
    conv2 = 9 * 32 * 64 * 24 * 24 + 2 * 64 * 24 * 24 + 4 * 64 * 12 * 12  # conv + bias + relu + pool
    fc1 = 9216 * 128 + 128 + 128
    classifier = 128 * 10 + 10
    assert layer_flops(model) == [conv1, conv2, fc1, classifier]


def test_known_architectures_match_published_mac_counts():
    # ResNet-18 at 224×224: 1.82 GMACs; MobileNetV2: 300 MMACs; CIFAR ResNet-32: 69 MMACs.
    # Element-wise ops add a few percent on top of the conv/linear MACs.
    cases = [
        ("resnet18", (3, 224, 224), 1.814e9),
        ("mobilenetv2", (3, 224, 224), 3.0e8),
        ("resnet32", (3, 32, 32), 6.9e7),
    ]
    for name, shape, published in cases:
        model = build_model(name, shape, 1000 if name != "resnet32" else 10, seed=0)
        convs_and_linears = sum(
            op.flops for layer in trace_layers(model) for op in layer.ops if op.kind in ("Conv2d", "Linear")
        )
        assert convs_and_linears == pytest.approx(published, rel=0.03), name


def test_unknown_leaf_module_is_refused():
    class Mystery(nn.Module):
        def forward(self, x):
            return x * 2

    with pytest.raises(TypeError, match="no FLOP rule for Mystery"):
        layer_flops(single(Mystery(), (3,)))


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 6), name=st.sampled_from(["mlp", "mnistnet", "convnet"]))
def test_flops_and_activations_scale_linearly_with_batch(batch, name):
    shape = (54,) if name == "mlp" else (1, 8, 8)
    model = build_model(name, shape, 5, seed=0)
    one = trace_layers(model, 1)
    many = trace_layers(model, batch)
    for a, b in zip(one, many, strict=True):
        assert b.flops == batch * a.flops
        assert b.out_bytes == batch * a.out_bytes
        assert b.param_bytes == a.param_bytes


def test_trace_restores_training_mode():
    model = build_model("resnet32", (3, 8, 8), 4, seed=0, norm="batch")
    model.train()
    model.layers[3].eval()
    before = [m.training for m in model.modules()]
    stats = model.layers[0][1].running_mean.clone()
    trace_layers(model, 2)
    assert [m.training for m in model.modules()] == before
    assert torch.equal(model.layers[0][1].running_mean, stats)
