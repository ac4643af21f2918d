"""What artifacts record and how mismatches are reported (planner.provenance)."""

import pytest

from planner.errors import ValidationError
from planner.profile import LayerProfile, ModelProfile
from planner.provenance import check_made_for, mismatches, structure_id


def _profile(act=1000, batch=1, source="measured", names=("a", "b")):
    layers = tuple(LayerProfile(n, 1e-3, 2e-3, 100, act * batch) for n in names)
    return ModelProfile("m", layers, batch_size=batch, source=source, provenance={"input_shape": [1, 8, 8]})


def test_structure_ignores_times_device_and_batch_but_not_sizes():
    assert _profile().structure == _profile(batch=16).structure
    assert _profile().structure != _profile(act=2000).structure
    assert structure_id([("a", 1, 2)]) == structure_id([("a", 1, 2)])


def test_a_synthetic_profile_is_known_by_its_layer_names_only():
    made = _profile(act=7, source="synthetic").made_from()
    assert "structure" not in made and made["layers"] == _profile().made_from()["layers"]


def test_mismatches_name_what_differs_and_only_what_both_know():
    recorded = {"model": "mlp", "input_shape": [64], "structure": "x", "seed": 1}
    actual = {"model": "mnistnet", "input_shape": [1, 8, 8], "structure": "y"}
    assert mismatches(recorded, actual) == ["model mlp, not mnistnet", "input shape 64, not 1×8×8"]
    assert mismatches({"structure": "x"}, {"structure": "y"}) == ["other layer sizes (parameter or activation bytes)"]
    assert mismatches(None, actual) == [] and mismatches({"dataset": "digits"}, actual) == []


def test_check_made_for_refuses_unless_forced():
    with pytest.raises(ValidationError, match=r"plan p does not match this run: model a, not b \(--force to go on"):
        check_made_for({"model": "a"}, {"model": "b"}, "plan p", "this run")
    assert check_made_for({"model": "a"}, {"model": "b"}, "plan p", "this run", force=True) == ["model a, not b"]
