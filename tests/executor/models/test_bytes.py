"""Parameter and activation bytes equal the sizes of the tensors themselves."""

import pytest
import torch

from executor.models import build_model
from executor.profiler import activation_bytes, parameter_bytes, roofline_profile

SHAPES = {"mlp": (54,), "mnistnet": (1, 28, 28), "convnet": (3, 32, 32), "resnet32": (3, 32, 32)}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("batch", [1, 3])
def test_bytes_equal_tensor_sizes(name, batch):
    model = build_model(name, SHAPES[name], 7, seed=0)
    params = [sum(p.numel() * 4 for p in layer.parameters()) for layer in model.layers]
    outputs = []
    with torch.no_grad():
        x = torch.zeros(batch, *SHAPES[name])
        model.eval()
        for j in range(model.num_layers):
            x = model.forward_range(x, j, j + 1)
            outputs.append(x.numel() * x.element_size())
    assert parameter_bytes(model) == params
    assert activation_bytes(model, batch) == outputs
    assert sum(params) == sum(p.numel() * 4 for p in model.parameters())
    profile = roofline_profile(model, "cpu", batch_size=batch)
    assert profile.param_bytes.tolist() == params
    assert profile.act_bytes.tolist() == outputs


def test_mnistnet_activation_matches_design_example():
    # DESIGN.md's profile example: conv1 of MNISTNet keeps 32×26×26 float32 = 86,528 bytes.
    model = build_model("mnistnet", (1, 28, 28), 10)
    assert activation_bytes(model)[0] == 86528
    assert parameter_bytes(model)[0] == (32 * 9 + 32) * 4


def test_batchnorm_buffers_are_not_parameter_bytes():
    model = build_model("resnet32", (3, 8, 8), 10, norm="batch")
    stem = model.layers[0]
    expected = (16 * 3 * 9 + 16 + 16) * 4  # conv weight + BN weight + BN bias; running stats excluded
    assert parameter_bytes(model)[0] == expected
    assert sum(b.numel() for b in stem.buffers()) > 0
