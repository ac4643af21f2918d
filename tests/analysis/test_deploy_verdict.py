"""`ferret deploy`'s verdict line: what the promise missed, and what recalibrating on the run brings back."""

from __future__ import annotations

from types import SimpleNamespace

from analysis.deploy.report import verdict
from analysis.validate import JUDGED, MetricComparison


def validation(errors: dict[str, float]):
    """A stand-in for a `Validation` with these relative errors (±10 % tolerance) on the judged metrics."""
    metrics = {
        name: MetricComparison(name, "", 1.0, 1.0 + errors.get(name, 0.0), errors.get(name, 0.0), "relative", 0.1)
        for name in JUDGED
    }
    return SimpleNamespace(metric=metrics.__getitem__, measured=SimpleNamespace(clock="stream"), kinds=())


def test_a_kept_promise_names_every_judged_metric():
    line = verdict(validation({}), None)
    assert line.startswith("VERDICT: the plan kept its promise") and all(name in line for name in JUDGED)


def test_recalibration_is_credited_only_with_the_metrics_it_brings_back():
    promise = validation({"throughput_per_s": 0.33})
    fixed = verdict(promise, validation({"throughput_per_s": 0.014, "latency_p50_s": 0.17}))
    assert "twin gets throughput_per_s within tolerance" in fixed  # not "the twin is within tolerance":
    assert "latency_p50_s" not in fixed.split("op durations")[0].split("promise —")[1].split(";")[0]  # p50 was kept
    missed = verdict(promise, validation({"throughput_per_s": 0.5}))
    assert "even recalibrated on this run the twin misses throughput_per_s by +50.00 %" in missed
