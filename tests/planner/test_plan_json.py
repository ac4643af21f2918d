"""Exact checks of the profile/plan JSON contract (property tests live in tests/planner)."""

import json

import pytest

from planner.errors import ValidationError
from planner.plan import Plan, WorkerConfig, default_placement
from planner.profile import LayerProfile, ModelProfile

PROFILE_JSON = {
    "model": "mnistnet",
    "device": "cpu",
    "batch_size": 1,
    "source": "measured",
    "layers": [
        {
            "name": "conv1",
            "t_fwd_s": 1.2e-4,
            "t_bwd_s": 2.3e-4,
            "param_bytes": 1280,
            "act_bytes": 86528,
            "fwd_flops": 100352,
        },
        {"name": "fc", "t_fwd_s": 3e-5, "t_bwd_s": 6e-5, "param_bytes": 5000, "act_bytes": 40, "fwd_flops": 1250},
    ],
}


def _plan(**kw) -> Plan:
    base = dict(
        strategy="ferret",
        partition=(0, 1, 2),
        workers=(WorkerConfig(0, False, (1, 1), (0, 0)), WorkerConfig(1, True, (2, 1), (1, 0))),
        placement=default_placement(2, 2),
        arrival_interval_s=2e-3,
    )
    base.update(kw)
    return Plan(**base)


def test_profile_round_trip_is_exact():
    profile = ModelProfile.from_json(PROFILE_JSON)
    assert profile.to_json() == PROFILE_JSON
    assert ModelProfile.from_json(json.loads(json.dumps(profile.to_json()))) == profile
    assert profile.t_fwd.tolist() == [1.2e-4, 3e-5]
    assert profile.param_bytes.dtype.kind == "i"


def test_profile_save_load(tmp_path):
    profile = ModelProfile.from_json(PROFILE_JSON)
    profile.save(tmp_path / "p.json")
    assert ModelProfile.load(tmp_path / "p.json") == profile


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(layers=[]), "profile.layers is empty"),
        (lambda d: d["layers"][1].update(t_fwd_s=-1.0), r"profile.layers\[1\].t_fwd_s"),
        (lambda d: d["layers"][0].update(param_bytes=-5), r"profile.layers\[0\].param_bytes"),
        (lambda d: d["layers"][0].update(act_bytes="big"), r"profile.layers\[0\].act_bytes must be int"),
        (lambda d: d["layers"][0].pop("t_bwd_s"), r"profile.layers\[0\].t_bwd_s is missing"),
        (lambda d: d.update(batch_size=0), "profile.batch_size"),
        (lambda d: d.update(source="guessed"), "profile.source"),
        (lambda d: d["layers"][0].update(t_fwd_s=0.0, t_bwd_s=0.0), "zero forward and backward"),
        (lambda d: d["layers"][0].update(t_fwd_s=True), r"t_fwd_s must be"),
    ],
)
def test_profile_validation_names_the_field(mutate, message):
    obj = json.loads(json.dumps(PROFILE_JSON))
    mutate(obj)
    with pytest.raises(ValidationError, match=message):
        ModelProfile.from_json(obj)


def test_plan_round_trip_is_exact():
    plan = _plan().with_prediction(412.7, 51380224, feasible=True)
    obj = json.loads(json.dumps(plan.to_json()))
    assert Plan.from_json(obj) == plan
    assert Plan.from_json(obj).to_json() == obj


def test_backward_weights_round_trips_and_defaults_to_stashed():
    latest = (WorkerConfig(0, True, (1, 1), (0, 0), "latest"), WorkerConfig(1, False, (1, 1), (0, 0)))
    plan = _plan(workers=latest)
    obj = json.loads(json.dumps(plan.to_json()))
    assert [w["backward_weights"] for w in obj["workers"]] == ["latest", "stashed"]
    assert Plan.from_json(obj) == plan and Plan.from_json(obj).workers[0].latest
    for worker in obj["workers"]:  # a plan written before the field existed
        del worker["backward_weights"]
    assert [w.backward_weights for w in Plan.from_json(obj).workers] == ["stashed", "stashed"]


def test_plan_save_load_checks_layer_count(tmp_path):
    plan = _plan()
    plan.save(tmp_path / "plan.json")
    assert Plan.load(tmp_path / "plan.json", num_layers=2) == plan
    with pytest.raises(ValidationError, match="profile has 3 layers"):
        Plan.load(tmp_path / "plan.json", num_layers=3)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(partition=(0,)), "at least 2 boundaries"),
        (dict(partition=(1, 2, 3)), "must start at layer 0"),
        (dict(partition=(0, 1, 1)), "strictly increasing"),
        (dict(workers=()), "workers is empty"),
        (
            dict(workers=(WorkerConfig(0, False, (0, 1), (0, 0)), WorkerConfig(1, False, (1, 1), (0, 0)))),
            r"accumulation\[0\] must be in \[1, ",
        ),
        (
            dict(workers=(WorkerConfig(0, False, (1, 1), (0, 1)), WorkerConfig(1, False, (1, 1), (0, 0)))),
            r"omission\[1\] must be in \[0, P-1-j = 0\]",
        ),
        (
            dict(workers=(WorkerConfig(0, False, (1, 1), (2, 0)), WorkerConfig(1, False, (1, 1), (0, 0)))),
            r"omission\[0\]",
        ),
        (
            dict(workers=(WorkerConfig(0, False, (1,), (0,)), WorkerConfig(1, False, (1, 1), (0, 0)))),
            "has 1 entries, the plan has 2 stages",
        ),
        (
            dict(workers=(WorkerConfig(1, False, (1, 1), (0, 0)), WorkerConfig(1, False, (1, 1), (0, 0)))),
            "already used",
        ),
        (
            dict(workers=(WorkerConfig(5, False, (1, 1), (0, 0)), WorkerConfig(1, False, (1, 1), (0, 0)))),
            "offset must be -1",
        ),
        (dict(placement=((0, 1),)), "placement has 1 rows"),
        (dict(placement=((0, -1), (0, 1))), "negative device"),
        (dict(arrival_interval_s=0.0), "arrival_interval_s"),
        (dict(decay_per_s=-1.0), "decay_per_s"),
        (dict(budget_bytes=0), "budget_bytes"),
        (dict(minibatch=0), "minibatch"),
        (
            dict(workers=(WorkerConfig(0, True, (1, 1), (0, 0), "fresh"), WorkerConfig(1, False, (1, 1), (0, 0)))),
            r"workers\[0\].backward_weights must be one of stashed, latest",
        ),
        (
            dict(workers=(WorkerConfig(0, False, (1, 1), (0, 0)), WorkerConfig(1, False, (1, 1), (0, 0), "latest"))),
            r"workers\[1\].backward_weights 'latest' .* needs recompute true",
        ),
    ],
)
def test_plan_validation_names_the_field(kw, message):
    with pytest.raises(ValidationError, match=message):
        _plan(**kw).validate()


def test_removed_worker_is_valid_and_inactive():
    plan = _plan(workers=(WorkerConfig(-1, False, (1, 1), (1, 0)), WorkerConfig(1, False, (1, 1), (0, 0)))).validate()
    assert plan.active_workers == (1,)
    assert plan.num_devices == 4 and plan.active_devices == 2  # the removed worker's two slots idle


def test_default_placement():
    # One device per (worker, stage) by default: the regime the closed forms assume.
    assert default_placement(2, 3) == ((0, 1, 2), (3, 4, 5))
    # D = P: stage j of every worker on device j (DESIGN.md's rule).
    assert default_placement(2, 3, num_devices=3) == ((0, 1, 2), (0, 1, 2))
    # D in between spreads the workers over all devices.
    assert default_placement(2, 3, num_devices=4) == ((0, 1, 2), (3, 0, 1))
    assert default_placement(1, 3, num_devices=2) == ((0, 1, 0),)
    assert _plan().num_devices == 4


def test_layer_profile_rejects_non_object():
    with pytest.raises(ValidationError, match="must be an object"):
        LayerProfile.from_json([1, 2], "profile.layers[0]")
