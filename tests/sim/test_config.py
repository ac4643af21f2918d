"""`SimConfig`: validation with clear messages and a JSON round trip calibration can rely on."""

from __future__ import annotations

import math

import pytest

from planner.config_field import check_bounds, field_specs
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
        ({"concurrency": 0}, r"concurrency must be an integer in \[1, 1024\], got 0"),
        ({"concurrency": 1.5}, r"concurrency must be an integer in \[1, 1024\], got 1.5"),
        ({"concurrency": True}, r"concurrency must be an integer in \[1, 1024\], got True"),
        ({"concurrency": None}, "concurrency must be given, got None"),
        ({"host_cores": 2.0}, "host_cores must be an integer"),
        ({"slowdown": -1.0}, r"slowdown must be in \[0, 1000\], got -1.0"),
        ({"slowdown": math.nan}, r"slowdown must be finite and in \[0, 1000\], got nan"),
        ({"time_scale": 0.0}, r"time_scale must be in \(0, 1e\+06\], got 0.0"),
        ({"link_bandwidth_Bps": 0.0}, "link_bandwidth_Bps must be ≥ 1, got 0.0"),
        ({"jitter": "gaussian"}, "jitter must be one of none, lognormal"),
        ({"input_buffer": -1}, r"input_buffer must be an integer in \[0, 2147483648\], got -1"),
        ({"compensation_buffers": -2}, r"compensation_buffers must be an integer in \[0, 64\], got -2"),
        ({"trace_memory": 1}, "trace_memory must be true or false, got 1"),
    ],
)
def test_bad_values_are_refused_by_name(kwargs, message):
    """Types and bounds come from each field's declaration (`check_bounds`), the CLI's too."""
    with pytest.raises(ValidationError, match=message):
        SimConfig(**kwargs)


def test_unknown_fields_in_json_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="unknown field"):
        SimConfig.from_json({"concurency": 2})
    path = tmp_path / "bad.json"
    path.write_text('{"slowdown": "fast"}')
    with pytest.raises(ValidationError, match=r"bad\.json: sim config: slowdown"):
        SimConfig.load(path)


def _outside_and_edge(spec):
    """A value just outside the declared bounds and one on the allowed edge (ints stay ints)."""
    step = 1 if spec.unit == "int" else 1e-9
    if spec.ge is not None:
        return spec.ge - step, spec.ge
    if spec.gt is not None:
        return spec.gt, spec.gt + step
    raise AssertionError(f"{spec} has no lower bound")


@pytest.mark.parametrize(
    "name", [f.name for f, spec in field_specs(SimConfig) if spec.ge is not None or spec.gt is not None]
)
def test_the_flags_bounds_are_the_bounds_validate_enforces(name):
    """The CLI checks a field's declared bounds; SimConfig.validate must agree at the edge."""
    spec = next(spec for f, spec in field_specs(SimConfig) if f.name == name)
    outside, edge = _outside_and_edge(spec)
    with pytest.raises(ValidationError, match=name):
        SimConfig(**{name: outside})
    assert getattr(SimConfig(**{name: edge}), name) == edge
    check_bounds(SimConfig(), "sim config")


@pytest.mark.parametrize("name", [f.name for f, spec in field_specs(SimConfig) if spec.le is not None])
def test_upper_bounds_keep_times_and_bytes_finite(name):
    """Class 3 of issue 13: a scale, ratio or jitter beyond its declared ceiling (where times
    would overflow or vanish, or bytes pass int64) is refused; the ceiling itself is allowed."""
    spec = next(spec for f, spec in field_specs(SimConfig) if f.name == name)
    above = spec.le + 1 if spec.unit == "int" else spec.le * (1 + 1e-9)
    edge = int(spec.le) if spec.unit == "int" else spec.le
    with pytest.raises(ValidationError, match=name):
        SimConfig(**{name: above})
    assert getattr(SimConfig(**{name: edge}), name) == edge
