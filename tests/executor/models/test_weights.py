"""Pretrained weights from a local file: own naming, torchvision naming, and clear errors."""

import pytest
import torch

from executor.models import build_model
from planner.errors import FerretError


def torchvision_resnet18_state(num_classes: int = 1000) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's resnet18 key names and shapes, written out by hand."""
    g = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}

    def conv(key, cout, cin, k):
        state[f"{key}.weight"] = torch.randn(cout, cin, k, k, generator=g)

    def bn(key, c):
        state[f"{key}.weight"] = torch.rand(c, generator=g) + 0.5
        state[f"{key}.bias"] = torch.randn(c, generator=g)
        state[f"{key}.running_mean"] = torch.randn(c, generator=g)
        state[f"{key}.running_var"] = torch.rand(c, generator=g) + 0.5
        state[f"{key}.num_batches_tracked"] = torch.tensor(100)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            key = f"layer{stage}.{block}"
            conv(f"{key}.conv1", width, cin, 3)
            bn(f"{key}.bn1", width)
            conv(f"{key}.conv2", width, width, 3)
            bn(f"{key}.bn2", width)
            if stage > 1 and block == 0:
                conv(f"{key}.downsample.0", width, cin, 1)
                bn(f"{key}.downsample.1", width)
            cin = width
    state["fc.weight"] = torch.randn(num_classes, 512, generator=g)
    state["fc.bias"] = torch.randn(num_classes, generator=g)
    return state


def test_torchvision_resnet18_weights_load(tmp_path):
    path = tmp_path / "resnet18.pth"
    state = torchvision_resnet18_state()
    torch.save(state, path)
    model = build_model("resnet18", (3, 224, 224), 10, weights=path)
    own = model.state_dict()
    assert torch.equal(own["layers.0.0.weight"], state["conv1.weight"])
    assert torch.equal(own["layers.3.downsample.0.weight"], state["layer2.0.downsample.0.weight"])
    assert torch.equal(own["layers.8.bn2.running_var"], state["layer4.1.bn2.running_var"])
    # 1000 ImageNet classes vs 10 here: the classifier keeps its initialisation.
    assert model.classifier.weight.shape == (10, 512)
    # With the same class count the classifier is loaded too.
    full = build_model("resnet18", (3, 224, 224), 1000, weights=path)
    assert torch.equal(full.classifier.weight, state["fc.weight"])
    assert type(full.layers[0][1]).__name__ == "FrozenBatchNorm2d"


def test_own_weights_round_trip_with_module_prefix(tmp_path):
    source = build_model("mobilenetv2", (3, 32, 32), 5, seed=1)
    path = tmp_path / "m.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    loaded = build_model("mobilenetv2", (3, 32, 32), 5, seed=2, norm="group", weights=path)
    for (k, a), b in zip(source.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_torchvision_mobilenet_key_map():
    from executor.models.mobilenet import torchvision_mobilenetv2_key

    model = build_model("mobilenetv2", (3, 224, 224), 1000, norm="batch")
    own = model.state_dict()
    # torchvision's names for a few tensors of features[0], [2], [18] and the classifier.
    for tv_key, shape in [
        ("features.0.0.weight", (32, 3, 3, 3)),
        ("features.0.1.running_var", (32,)),
        ("features.2.conv.0.0.weight", (96, 16, 1, 1)),
        ("features.2.conv.1.0.weight", (96, 1, 3, 3)),
        ("features.2.conv.2.weight", (24, 96, 1, 1)),
        ("features.2.conv.3.bias", (24,)),
        ("features.1.conv.1.weight", (16, 32, 1, 1)),
        ("features.18.0.weight", (1280, 320, 1, 1)),
        ("classifier.1.weight", (1000, 1280)),
    ]:
        assert tuple(own[torchvision_mobilenetv2_key(tv_key)].shape) == shape, tv_key


def test_weight_errors_name_the_file(tmp_path):
    missing = tmp_path / "absent.pt"
    with pytest.raises(FerretError, match=f"weights file not found: {missing}"):
        build_model("resnet18", (3, 64, 64), 10, weights=missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(FerretError, match=f"cannot read weights {corrupt}"):
        build_model("resnet18", (3, 64, 64), 10, weights=corrupt)
    tv = tmp_path / "tv.pt"
    torch.save(torchvision_resnet18_state(), tv)
    with pytest.raises(FerretError, match=r"layers.0.0.weight has shape \(64, 3, 7, 7\)"):
        build_model("resnet18", (3, 32, 32), 10, weights=tv)  # CIFAR stem: 3×3 conv
    with pytest.raises(FerretError, match="norm='frozen-batch'"):
        build_model("resnet18", (3, 64, 64), 10, norm="group", weights=tv)
    partial = tmp_path / "partial.pt"
    state = torchvision_resnet18_state()
    del state["layer3.1.conv2.weight"]
    torch.save(state, partial)
    with pytest.raises(FerretError, match="lack keys of resnet18: layers.6.conv2.weight"):
        build_model("resnet18", (3, 64, 64), 10, weights=partial)
    foreign = tmp_path / "foreign.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, foreign)
    with pytest.raises(FerretError, match="not in this project's naming"):
        build_model("convnet", (3, 32, 32), 10, weights=foreign)
