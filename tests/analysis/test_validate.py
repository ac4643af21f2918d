"""`analysis.validate`: predicted vs measured from two twin traces with known differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.run_folder import load_run_folder
from analysis.validate import validate
from planner.plan import WorkerConfig
from tests.analysis.twin_runs import edited_copy, simulate_folder
from tests.sim.builders import balanced_profile, make_plan

REQUIRED = (
    "throughput_per_s",
    "drop_rate",
    "adaptation_rate",
    "latency_p50_s",
    "latency_p99_s",
    "peak_memory_bytes",
    "peak_memory_device_0",
    "peak_memory_device_1",
    "mean_staleness",
)
FLAGS = (
    "--trace-memory",
    "--link-latency",
    "1ms",
    "--update-time",
    "4ms",
    "--op-overhead",
    "2ms",
    "--arrival",
    "poisson",
)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """3 stages, 3 workers sharing 2 devices, costly links and updates, Poisson arrivals."""
    root = tmp_path_factory.mktemp("validate")
    plan = make_plan(
        [WorkerConfig.default(n, 3) for n in range(3)], 3, 0.1, placement=((0, 1, 0), (1, 0, 1), (0, 1, 0))
    )
    return simulate_folder(root / "sim", plan, balanced_profile(3), 300, *FLAGS)


def test_a_trace_against_itself_has_zero_error_everywhere(twin):
    folder = load_run_folder(twin, "--predicted")
    v = validate(folder, folder)
    names = [m.name for m in v.metrics]
    assert all(name in names for name in REQUIRED)
    for m in v.metrics:
        assert m.error == 0.0, m
        assert m.predicted is not None and math.isfinite(m.predicted), m
    assert {k.kind for k in v.kinds} == {"fwd", "bwd", "update", "send"}
    for k in v.kinds:
        assert k.median_error == 0.0 and k.p90_abs_error == 0.0
    assert not v.aligned.only_predicted and not v.aligned.only_measured
    assert v.metric("drop_rate").predicted > 0  # the scenario drops, so the zero is not vacuous
    assert v.staleness["predicted"] == v.staleness["measured"] and len(v.staleness["predicted"]) > 1


def test_metrics_match_the_twin_s_own_summary(twin):
    folder = load_run_folder(twin, "--predicted")
    v = validate(folder, folder)
    s = folder.summary
    for name in ("throughput_per_s", "adaptation_rate", "latency_p50_s", "latency_p99_s", "peak_memory_bytes"):
        assert v.metric(name).predicted == pytest.approx(s[name], rel=1e-9), name
    assert v.metric("drop_rate").predicted == pytest.approx(100 * s["drop_rate"])
    for d, peak in enumerate(s["peak_memory_per_device"]):
        assert v.metric(f"peak_memory_device_{d}").predicted == peak
    mean = sum(t * c for h in s["staleness_histogram"] for t, c in enumerate(h)) / sum(
        map(sum, s["staleness_histogram"])
    )
    assert v.metric("mean_staleness").predicted == pytest.approx(mean)


def _stretch(rows):
    """Every op (not arrivals, drops or memory changes) lasts 10 % longer, starting where it did."""
    for row in rows:
        if row["kind"] in ("fwd", "bwd", "recompute", "update", "send", "recv"):
            row["t_end"] = row["t_start"] + 1.1 * (row["t_end"] - row["t_start"])
    return rows


def test_every_op_stretched_by_ten_percent_reports_ten_percent(twin, tmp_path):
    stretched = edited_copy(twin, tmp_path / "stretched", _stretch)
    v = validate(load_run_folder(twin, "--predicted"), load_run_folder(stretched, "--measured"))
    assert {k.kind for k in v.kinds} == {"fwd", "bwd", "update", "send"}
    for k in v.kinds:
        assert k.median_error == pytest.approx(0.1, abs=1e-9), k
        assert k.p90_abs_error == pytest.approx(0.1, abs=1e-9), k
        assert k.measured_median_s == pytest.approx(1.1 * k.predicted_median_s)
    # The same data were trained, dropped and went stale; only when they were trained moved.
    for name in ("throughput_per_s", "drop_rate", "mean_staleness", "peak_memory_bytes"):
        assert v.metric(name).error == pytest.approx(0.0, abs=1e-12), name
    assert v.metric("latency_p50_s").error > 0 and v.metric("adaptation_rate").error < 0


def test_memory_timeline_from_mem_rows_matches_the_ledger(twin):
    folder = load_run_folder(twin, "--predicted")
    v = validate(folder, folder)
    memory = v.predicted_metrics.memory
    assert memory is not None
    assert memory.peak_total == folder.summary["peak_memory_bytes"]
    assert list(memory.peak_per_device) == folder.summary["peak_memory_per_device"]
    assert np.all(np.diff(memory.t_s) >= 0)
