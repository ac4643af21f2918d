"""Measured profiles: valid, positive, sensibly ordered, and harmless to the model."""

import pytest
import torch

from executor.models import build_model
from executor.profiler import layer_flops, profile_model
from planner.errors import FerretError
from planner.profile import ModelProfile


@pytest.fixture(scope="module")
def convnet_profile():
    model = build_model("convnet", (3, 16, 16), 10, seed=0, width=32)
    return model, profile_model(model, warmup=2, repeats=7, threads=1)


def test_measured_profile_is_valid_and_positive(convnet_profile, tmp_path):
    model, profile = convnet_profile
    assert profile.source == "measured" and profile.device == "cpu" and profile.batch_size == 1
    assert [layer.name for layer in profile.layers] == list(model.layer_names)
    assert (profile.t_fwd > 0).all() and (profile.t_bwd > 0).all()
    assert profile.fwd_flops.tolist() == layer_flops(model)
    path = tmp_path / "p.json"
    profile.save(path)
    assert ModelProfile.load(path) == profile


def test_backward_costs_at_least_the_forward_over_conv_layers(convnet_profile):
    # Medians over repeats, summed over the three conv blocks: a conv's backward computes the
    # weight gradient (and, past layer 0, the input gradient), each about one forward's work.
    _, profile = convnet_profile
    conv = slice(0, 3)
    assert profile.t_bwd[conv].sum() >= profile.t_fwd[conv].sum()


def test_profiling_leaves_model_and_threads_untouched():
    model = build_model("resnet32", (3, 8, 8), 10, seed=0, norm="batch")
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    threads = torch.get_num_threads()
    profile = profile_model(model, batch_size=2, warmup=0, repeats=1, threads=1)
    assert profile.batch_size == 2
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert model.training
    assert torch.get_num_threads() == threads


def test_first_layer_without_input_gradient_still_times_its_backward():
    model = build_model("mlp", (54,), 7, seed=0)
    profile = profile_model(model, warmup=1, repeats=3)
    assert profile.t_bwd[0] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "cuda:7"}, "CUDA is not available|only"),
        ({"device": "tpu"}, "unknown device|unsupported device"),
        ({"repeats": 0}, "repeats ≥ 1"),
        ({"threads": 0}, "threads must be ≥ 1"),
    ],
)
def test_bad_profiling_requests_are_user_errors(kwargs, message):
    model = build_model("mlp", (4,), 2)
    with pytest.raises(FerretError, match=message):
        profile_model(model, **kwargs)
