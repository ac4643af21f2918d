"""Every model adapts to the stream's input and class count and partitions into its layers."""

import pytest
import torch
import torch.nn.functional as F

from executor.models import build_model
from executor.models.norm import FrozenBatchNorm2d, group_count
from executor.models.registry import DEFAULT_INPUT_SHAPES
from planner.errors import FerretError

IMAGE_MODELS = ["mnistnet", "convnet", "resnet32", "resnet18", "mobilenetv2"]
LAYER_COUNTS = {"convnet": 4, "resnet32": 18, "resnet18": 11, "mobilenetv2": 20}


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_models_adapt_and_partition(name, shape):
    model = build_model(name, shape, 7, seed=0)
    x = torch.randn(2, *shape)
    model.eval()
    with torch.no_grad():
        out = model(x)
        h = x
        for j in range(model.num_layers):
            h = model.forward_range(h, j, j + 1)
        features = model.features(x)
    assert out.shape == (2, 7)
    torch.testing.assert_close(h, out, rtol=0, atol=0)
    assert features.shape[1] == model.classifier.in_features
    assert model.num_layers == LAYER_COUNTS.get(name, model.num_layers)
    assert len(set(model.layer_names)) == model.num_layers


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_imagenet_models_at_224(name):
    model = build_model(name, (3, 224, 224), 10, seed=0).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 10)


@pytest.mark.parametrize("name", ["convnet", "resnet32", "resnet18", "mobilenetv2"])
def test_train_step_on_one_sample(name):
    # The executors train on one datum at a time: the default norm must allow batch size 1.
    model = build_model(name, (3, 32, 32), 10, seed=0).train()
    loss = F.cross_entropy(model(torch.randn(1, 3, 32, 32)), torch.tensor([3]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_resnet32_is_the_cifar_resnet():
    model = build_model("resnet32", (3, 32, 32), 10, seed=0)
    n_params = sum(p.numel() for p in model.parameters())
    # He et al. report 0.46M parameters with identity shortcuts; 1×1 projections (option B) on
    # the two stage transitions add 16·32 + 32·64 conv weights and their norms' affine terms.
    assert 0.46e6 < n_params < 0.475e6
    assert model.layer_names[0] == "stem" and model.layer_names[-2:] == ("pool", "classifier")
    blocks = [n for n in model.layer_names if n.startswith("layer")]
    assert len(blocks) == 15


def test_resnet18_stem_follows_input_size():
    big = build_model("resnet18", (3, 224, 224), 10)
    small = build_model("resnet18", (3, 32, 32), 10)
    assert big.layers[0][0].kernel_size == (7, 7) and len(big.layers[0]) == 4
    assert small.layers[0][0].kernel_size == (3, 3) and len(small.layers[0]) == 3
    forced = build_model("resnet18", (3, 32, 32), 10, stem="imagenet")
    assert forced.layers[0][0].kernel_size == (7, 7)


def test_frozen_batchnorm_keeps_its_statistics_in_training():
    model = build_model("resnet32", (3, 8, 8), 10, seed=0, norm="frozen-batch").train()
    norm = model.layers[0][1]
    assert isinstance(norm, FrozenBatchNorm2d)
    before = norm.running_mean.clone()
    model(torch.randn(1, 3, 8, 8) + 5).sum().backward()
    assert torch.equal(norm.running_mean, before)
    assert norm.weight.grad is not None


def test_group_count_rule():
    assert [group_count(c) for c in (16, 32, 64, 96, 512)] == [8, 16, 32, 32, 32]


def test_seed_makes_weights_identical():
    for name in IMAGE_MODELS:
        a = build_model(name, (1, 8, 8), 3, seed=5)
        b = build_model(name, (1, 8, 8), 3, seed=5)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_every_model_has_a_default_input_shape():
    for name in ["mlp", *IMAGE_MODELS]:
        build_model(name, DEFAULT_INPUT_SHAPES[name], 10)
    assert DEFAULT_INPUT_SHAPES["mlp"] == (54,)


@pytest.mark.parametrize(
    ("name", "shape", "options", "message"),
    [
        ("resnet18", (3, 32), {}, "needs a \\(C, H, W\\)"),
        ("convnet", (3, 32, 32), {"depth": 0}, "depth ≥ 1"),
        ("convnet", (3, 32, 32), {"norm": "magic"}, "unknown norm 'magic'"),
        ("resnet32", (3, 32, 32), {"widht": 3}, "does not take option\\(s\\) widht"),
        ("resnet18", (3, 32, 32), {"stem": "tiny"}, "stem must be"),
    ],
)
def test_bad_model_requests_are_user_errors(name, shape, options, message):
    with pytest.raises(FerretError, match=message):
        build_model(name, shape, 10, **options)
