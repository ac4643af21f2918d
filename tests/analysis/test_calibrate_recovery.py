"""Calibration recovers a twin's known parameters from its traces; the fitted twin predicts runs
it has not seen."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analysis.calibrate import calibrate
from planner.profile import LayerProfile, ModelProfile
from sim import SimConfig, simulate
from sim.algorithm_passes import NO_PASSES, AlgorithmPasses
from sim.arrivals import PoissonArrivals
from tests.analysis.known_twin import (
    TRAINING,
    TRUE_CONFIG,
    plain_profile,
    plan_for,
    training_runs,
    true_profile,
    twin_run,
    with_jitter,
)

EXACT = 1e-6


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    return calibrate(training_runs(tmp_path_factory.mktemp("exact")), plain_profile())


@pytest.fixture(scope="module")
def jittered(tmp_path_factory):
    runs = training_runs(tmp_path_factory.mktemp("jitter"), with_jitter(0.1), samples=1500)
    return calibrate(runs, plain_profile())


def test_without_jitter_every_parameter_comes_back_exactly(exact):
    c = exact.sim_config
    assert c.concurrency == TRUE_CONFIG.concurrency
    for name in ("slowdown", "op_overhead_s", "update_s", "link_latency_s", "link_bandwidth_Bps"):
        assert getattr(c, name) == pytest.approx(getattr(TRUE_CONFIG, name), rel=EXACT), name
    assert c.jitter == "none" and c.jitter_sigma == 0.0
    assert exact.contention.jitter_sigma.value < 1e-8
    assert not exact.contention.host_slowdown.fitted  # this twin's host has no core limit


def test_without_jitter_layer_times_come_back_exactly_where_the_runs_pin_them(exact):
    true = true_profile()
    for k in range(4):  # layers 0-3 are cut apart by the two partitions
        assert exact.layers.t_fwd[k].value == pytest.approx(true.layers[k].t_fwd_s, rel=EXACT)
        assert exact.layers.t_bwd[k].value == pytest.approx(true.layers[k].t_bwd_s, rel=EXACT)
        assert exact.layers.t_fwd[k].how == "fitted"
    # Layers 4 and 5 always share a stage: their sum is exact, the split follows the profile.
    for fitted, attr in ((exact.layers.t_fwd, "t_fwd_s"), (exact.layers.t_bwd, "t_bwd_s")):
        assert fitted[4].value + fitted[5].value == pytest.approx(
            getattr(true.layers[4], attr) + getattr(true.layers[5], attr), rel=EXACT
        )
        assert fitted[4].value == pytest.approx(fitted[5].value, rel=EXACT)  # the plain profile's equal shares
        assert "split" in fitted[4].how
    # Worker 0 of the second run recomputes: the twin charges a recompute the forward's time.
    for k in range(LAYERS_RECOMPUTED):
        assert exact.layers.t_rec[k].value == pytest.approx(true.layers[k].t_fwd_s, rel=EXACT)
    # Each training partition's stages keep their own measured times (exact here: the twin adds).
    for stages, (partition, *_rest) in zip(exact.stages, TRAINING, strict=True):
        assert stages.partition == partition
        for j in range(len(partition) - 1):
            layers = range(partition[j], partition[j + 1])
            assert stages.t_fwd[j] == pytest.approx(sum(true.layers[k].t_fwd_s for k in layers), rel=EXACT)
            assert stages.t_bwd[j] == pytest.approx(sum(true.layers[k].t_bwd_s for k in layers), rel=EXACT)
    assert exact.profile.source == "calibrated"
    assert [layer.param_bytes for layer in exact.profile.layers] == [layer.param_bytes for layer in true.layers]


LAYERS_RECOMPUTED = 4


def test_with_jitter_parameters_come_back_within_tolerance(jittered):
    c = jittered.sim_config
    assert c.concurrency == 2 and c.jitter == "lognormal"
    assert c.jitter_sigma == pytest.approx(0.1, rel=0.1)
    assert c.slowdown == pytest.approx(0.3, rel=0.1)
    assert c.update_s == pytest.approx(0.003, rel=0.05)
    assert c.op_overhead_s == pytest.approx(0.004, abs=0.0015)
    assert c.link_latency_s == pytest.approx(0.002, rel=EXACT)  # links have no jitter in the twin
    assert c.link_bandwidth_Bps == pytest.approx(2e5, rel=EXACT)
    for p in jittered.parameters:
        if p.fitted and p.name not in ("concurrency", "link_latency_s", "link_bandwidth_Bps"):
            assert p.stderr > 0, p
    true = true_profile()
    for j, (lo, hi) in enumerate(((0, 2), (2, 4), (4, 6))):  # stage totals of the first partition
        fitted = sum(jittered.layers.t_fwd[k].value for k in range(lo, hi)) + c.op_overhead_s
        real = sum(true.layers[k].t_fwd_s for k in range(lo, hi)) + 0.004
        assert fitted == pytest.approx(real, rel=0.05), j


def test_one_partition_of_single_layer_stages_takes_the_overhead_from_the_profile_s_ratios(tmp_path):
    # Each stage is one layer, so a stage's time is `t_l + overhead` and nothing else separates
    # them; when the profile's ratios are right (true = 1.3 × profile), the intercept is exact.
    plain = plain_profile()
    scaled = ModelProfile(
        "known",
        tuple(
            LayerProfile(
                layer.name, 1.3 * (0.01 + 0.004 * i), 1.3 * (0.03 + 0.002 * i), layer.param_bytes, layer.act_bytes
            )
            for i, layer in enumerate(plain.layers)
        ),
    )
    profile = dataclasses.replace(
        scaled,
        layers=tuple(
            dataclasses.replace(layer, t_fwd_s=layer.t_fwd_s / 1.3, t_bwd_s=layer.t_bwd_s / 1.3)
            for layer in scaled.layers
        ),
    )
    run = twin_run(tmp_path / "one", plan_for(tuple(range(7)), 2, 0.2), scaled, SimConfig(op_overhead_s=0.004), 300)
    c = calibrate([run], profile)
    assert c.layers.overhead.how.startswith("intercept")
    assert c.sim_config.op_overhead_s == pytest.approx(0.004, rel=EXACT)
    for fitted, layer in zip(c.layers.t_fwd, scaled.layers, strict=True):
        assert fitted.value == pytest.approx(layer.t_fwd_s, rel=EXACT)


def test_the_calibrated_twin_predicts_a_held_out_plan_and_rate(jittered, tmp_path):
    # Another partition, worker count and arrival process than either training run.
    plan = plan_for((0, 3, 6), 2, 0.06)
    arrivals = PoissonArrivals(0.06)
    truth = simulate(plan, true_profile(), 2000, arrivals=arrivals, seed=11, config=with_jitter(0.1))
    before = simulate(plan, plain_profile(), 2000, arrivals=arrivals, seed=11, config=SimConfig())
    after = simulate(plan, jittered.profile, 2000, arrivals=arrivals, seed=11, config=jittered.sim_config)

    def errors(pred):
        return (
            pred.throughput_per_s / truth.throughput_per_s - 1,
            pred.latency_quantile(0.5) / truth.latency_quantile(0.5) - 1,
            100 * (pred.drop_rate - truth.drop_rate),
            pred.peak_memory_bytes / truth.peak_memory_bytes - 1,
        )

    thr, p50, drops, mem = errors(after)
    assert abs(thr) < 0.10 and abs(p50) < 0.10 and abs(drops) < 2.0 and abs(mem) < 0.05, errors(after)
    assert max(abs(e) for e in errors(before)[:2]) > 0.10  # the plain profile alone is off: the test can fail
    assert np.isfinite(after.adaptation_rate)


def test_host_contention_comes_back_exactly_when_devices_outnumber_cores(tmp_path):
    # Four devices on a 2-core host: an op that starts while k ops run elsewhere takes
    # 1 + 0.5·max(0, k + 1 - 2) times as long.
    config = dataclasses.replace(TRUE_CONFIG, concurrency=1, slowdown=0.0, host_cores=2, host_slowdown=0.5)
    plan = plan_for((0, 1, 2, 4, 6), 3, 0.03, devices=4)
    run = twin_run(tmp_path / "host", plan, true_profile(), config, 500)
    c = calibrate([run], plain_profile())
    assert c.contention.host_slowdown.fitted
    assert c.sim_config.host_cores == 2
    assert c.sim_config.host_slowdown == pytest.approx(0.5, rel=EXACT)
    assert c.contention.jitter_sigma.value < 1e-6


def test_lwf_s_teacher_inside_the_forward_is_not_fitted_into_it(tmp_path):
    # A forward op of a datum with a teacher runs two forwards (sim/algorithm_passes.py): the fit
    # takes the training forward back out of it, or a twin charging the teacher would charge it twice.
    # The op's one overhead is divided with it (jobs.observe): the fitted forward and overhead are
    # short by at most half the overhead.
    teacher = AlgorithmPasses(with_forward=1.0, from_sample=60)
    config = SimConfig(op_overhead_s=0.004, algorithm_passes=teacher)
    plan = plan_for(tuple(range(7)), 2, 0.2)
    run = twin_run(tmp_path / "lwf", plan, true_profile(), config, 300)
    assert run.passes == teacher  # read back from the folder's sim_config
    c = calibrate([run], plain_profile())
    for fitted, layer in zip(c.layers.t_fwd, true_profile().layers, strict=True):
        assert fitted.value + c.sim_config.op_overhead_s == pytest.approx(layer.t_fwd_s + 0.004, abs=0.002)
    blind = calibrate([dataclasses.replace(run, passes=NO_PASSES)], plain_profile())  # the test can fail
    assert blind.layers.t_fwd[0].value + blind.sim_config.op_overhead_s > 1.5 * (
        true_profile().layers[0].t_fwd_s + 0.004
    )
