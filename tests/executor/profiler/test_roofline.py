"""Roofline profiles: the per-op formula by hand, and scaling with the device table."""

import numpy as np
import pytest
from torch import nn

from executor.models import LayeredModel, build_model
from executor.profiler import ROOFLINE_DEVICES, RooflineDevice, resolve_device, roofline_profile
from planner.errors import FerretError


def test_linear_layer_by_hand():
    model = LayeredModel("t", [("fc", nn.Linear(1000, 1000))], (1000,), 1000)
    device = RooflineDevice("toy", peak_flops_per_s=2e12, bandwidth_bytes_per_s=1e12, launch_overhead_s=1e-6)
    profile = roofline_profile(model, device)
    flops = 1000 * 1000 + 1000  # MACs + bias
    moved = 4000 + 4000 + 4 * (1000 * 1000 + 1000)  # input + output + weights
    fwd = max(flops / 1e12, moved / 1e12) + 1e-6  # peak MAC/s = peak FLOP/s / 2
    bwd = max(2 * flops / 1e12, 2 * moved / 1e12) + 2e-6  # weighted op: two kernels backward
    (layer,) = profile.layers
    assert layer.t_fwd_s == pytest.approx(fwd, rel=1e-12)
    assert layer.t_bwd_s == pytest.approx(bwd, rel=1e-12)
    assert layer.fwd_flops == flops
    assert profile.source == "roofline" and profile.device == "toy"


def test_compute_bound_conv_by_hand():
    conv = nn.Conv2d(64, 64, 3, padding=1, bias=False)
    model = LayeredModel("t", [("conv", conv)], (64, 32, 32), 2)
    device = RooflineDevice("toy", peak_flops_per_s=2e9, bandwidth_bytes_per_s=1e12, launch_overhead_s=0.0)
    macs = 9 * 64 * 64 * 32 * 32
    (layer,) = roofline_profile(model, device).layers
    assert layer.t_fwd_s == pytest.approx(macs / 1e9)
    assert layer.t_bwd_s == pytest.approx(2 * macs / 1e9)


def test_times_scale_inversely_with_the_device_without_launch_overhead():
    model = build_model("convnet", (3, 32, 32), 10, seed=0)
    slow = RooflineDevice("slow", 1e12, 1e11, 0.0)
    fast = RooflineDevice("fast", 4e12, 4e11, 0.0)
    p_slow, p_fast = roofline_profile(model, slow), roofline_profile(model, fast)
    np.testing.assert_allclose(p_slow.t_fwd, 4 * p_fast.t_fwd, rtol=1e-12)
    np.testing.assert_allclose(p_slow.t_bwd, 4 * p_fast.t_bwd, rtol=1e-12)


def test_device_table_orders_the_gpus():
    model = build_model("resnet18", (3, 64, 64), 10, seed=0)
    total = {name: roofline_profile(model, name).t_fwd.sum() for name in ("h100", "a100", "titan-xp", "cpu")}
    assert total["h100"] < total["a100"] < total["titan-xp"] < total["cpu"]
    # Past launch overhead, each op is bound by compute or by memory: a layer's speed-up lies
    # between the two devices' peak-FLOP/s ratio and their bandwidth ratio.
    h100, titan = ROOFLINE_DEVICES["h100"], ROOFLINE_DEVICES["titan-xp"]
    layer = 2  # layer1.1: 3×3 convs on a 16×16×64 map
    ratio = (roofline_profile(model, "titan-xp").t_fwd[layer] - 7 * titan.launch_overhead_s) / (
        roofline_profile(model, "h100").t_fwd[layer] - 7 * h100.launch_overhead_s
    )
    compute_ratio = h100.peak_flops_per_s / titan.peak_flops_per_s
    memory_ratio = h100.bandwidth_bytes_per_s / titan.bandwidth_bytes_per_s
    assert compute_ratio * (1 - 1e-9) <= ratio <= memory_ratio * (1 + 1e-9)


def test_batch_amortises_weights_and_launches():
    model = build_model("mnistnet", (1, 28, 28), 10, seed=0)
    one = roofline_profile(model, "h100", batch_size=1)
    eight = roofline_profile(model, "h100", batch_size=8)
    assert (eight.t_fwd > one.t_fwd).all()
    assert (eight.t_fwd < 8 * one.t_fwd).all()
    assert (eight.act_bytes == 8 * one.act_bytes).all()


def test_custom_device_spec():
    dev = resolve_device("peak=19.5T,bw=2T,launch=4us")
    assert (dev.peak_flops_per_s, dev.bandwidth_bytes_per_s, dev.launch_overhead_s) == (19.5e12, 2e12, 4e-6)
    assert resolve_device("H100") is ROOFLINE_DEVICES["h100"]
    assert resolve_device("peak=1g,bw=1g").launch_overhead_s == 5e-6


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tpu-v9", "unknown roofline device"),
        ("peak=1T", "missing bw"),
        ("peak=1T,bw=fast", "cannot read"),
        ("peak=1T,bw=1T,clock=2", "unknown key"),
        ("peak=0,bw=1T", "must be positive"),
    ],
)
def test_bad_device_specs(spec, message):
    with pytest.raises(FerretError, match=message):
        resolve_device(spec)
