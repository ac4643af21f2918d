"""`SimConfig`: validation with clear messages and a JSON round trip calibration can rely on."""

from __future__ import annotations

import math

import pytest

from planner.errors import ValidationError
from sim import SimConfig


def test_json_round_trip_keeps_every_field_and_writes_free_links_as_null(tmp_path):
    config = SimConfig(concurrency=3, slowdown=0.25, link_latency_s=1e-5, jitter="lognormal", jitter_sigma=0.1)
    path = tmp_path / "sim.json"
    config.save(path)
    assert SimConfig.load(path) == config
    assert SimConfig().to_json()["link_bandwidth_Bps"] is None
    assert math.isinf(SimConfig.from_json(SimConfig().to_json()).link_bandwidth_Bps)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"concurrency": 0}, "concurrency must be an integer ≥ 1"),
        ({"slowdown": -1.0}, "slowdown must be a finite number ≥ 0"),
        ({"time_scale": 0.0}, "time_scale must be a positive number"),
        ({"link_bandwidth_Bps": 0.0}, "link_bandwidth_Bps must be positive"),
        ({"jitter": "gaussian"}, "jitter must be one of none, lognormal"),
        ({"input_buffer": -1}, "input_buffer must be an integer ≥ 0"),
        ({"compensation_buffers": -2}, "compensation_buffers must be ≥ 0"),
    ],
)
def test_bad_values_are_refused_by_name(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        SimConfig(**kwargs)


def test_unknown_fields_in_json_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="unknown field"):
        SimConfig.from_json({"concurency": 2})
    path = tmp_path / "bad.json"
    path.write_text('{"slowdown": "fast"}')
    with pytest.raises(ValidationError, match=r"bad\.json: sim config: slowdown"):
        SimConfig.load(path)
