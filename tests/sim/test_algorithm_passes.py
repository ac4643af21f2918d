"""The twin charges an algorithm's passes beyond the training step (sim/algorithm_passes.py): exact
small cases on a 2-stage pipeline (stage forward 1/8 s, backward 1/4 s, one device per stage)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from planner.errors import ValidationError
from planner.plan import WorkerConfig
from sim import MemoryTrace, SimConfig, simulate
from sim.algorithm_passes import NO_PASSES, AlgorithmPasses
from tests.sim.builders import balanced_profile, make_plan, plain_workers

FWD, BWD = 0.125, 0.25


class Given:
    """These arrival times, whatever the seed."""

    name = "given"
    mean_interval_s = 10.0

    def __init__(self, times: list[float]) -> None:
        self.arrival_s = np.asarray(times, dtype=np.float64)

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        return self.arrival_s[:n]


def run(passes: AlgorithmPasses, arrivals: list[float], workers: list[WorkerConfig] | None = None, **config):
    plan = make_plan(workers or plain_workers(1, 2), 2, 10.0)
    trace = MemoryTrace()
    sim_config = SimConfig(algorithm_passes=passes, **config)
    result = simulate(plan, balanced_profile(2), len(arrivals), Given(arrivals), 0, sim_config, trace)
    ops = [(r.kind, r.sample, r.stage, r.t_start, r.t_end) for r in trace.events() if r.kind in ("fwd", "bwd")]
    return ops, result


def test_no_passes_is_the_default_and_changes_nothing():
    assert SimConfig().algorithm_passes == NO_PASSES and NO_PASSES.none
    plain, plain_result = run(NO_PASSES, [0.0, 0.0625])
    # zero counts from a later datum: still no pass at all
    same, result = run(AlgorithmPasses(from_sample=1), [0.0, 0.0625])
    assert same == plain and result.makespan_s == plain_result.makespan_s
    assert [op for op in plain if op[1] == 0] == [("fwd", 0, 0, 0.0, FWD), ("fwd", 0, 1, FWD, 2 * FWD),
                         ("bwd", 0, 1, 2 * FWD, 2 * FWD + BWD), ("bwd", 0, 0, 2 * FWD + BWD, 2 * FWD + 2 * BWD)]  # fmt: skip


def test_lwf_teacher_doubles_each_forward_op():
    ops, result = run(AlgorithmPasses.at("with_forward", 1.0, 0.0), [0.0])
    assert ops == [
        ("fwd", 0, 0, 0.0, 0.25),
        ("fwd", 0, 1, 0.25, 0.5),
        ("bwd", 0, 1, 0.5, 0.75),
        ("bwd", 0, 0, 0.75, 1.0),
    ]
    assert result.update_s[0].tolist() == [1.0, 0.75]


def test_passes_start_at_from_sample():
    # datum 0 has no teacher yet (vanilla times); datum 1, alone in the pipeline, has one
    ops, _ = run(AlgorithmPasses(with_forward=1.0, from_sample=1), [0.0, 2.0])
    assert ops[:2] == [("fwd", 0, 0, 0.0, FWD), ("fwd", 0, 1, FWD, 2 * FWD)]
    assert ops[4:6] == [("fwd", 1, 0, 2.0, 2.25), ("fwd", 1, 1, 2.25, 2.5)]


def test_mir_scoring_is_charged_with_each_stage_forward():
    # two forwards and one backward of the stage per datum before its first forward: 1/8 + 2/8 + 1/4
    ops, result = run(AlgorithmPasses.at("before_forward", 2.0, 1.0), [0.0])
    f = FWD + 2 * FWD + BWD
    assert ops == [("fwd", 0, 0, 0.0, f), ("fwd", 0, 1, f, 2 * f), ("bwd", 0, 1, 2 * f, 2 * f + BWD),
                   ("bwd", 0, 0, 2 * f + BWD, 2 * f + 2 * BWD)]  # fmt: skip
    assert result.makespan_s == 2 * f + 2 * BWD


def test_mas_pass_holds_each_device_after_the_backward_not_the_update():
    # datum 1 arrives at 0.8 while stage 0's device runs datum 0's importance pass (0.75 → 1.125)
    ops, result = run(AlgorithmPasses.at("after_backward", 1.0, 1.0), [0.0, 0.8])
    plain, plain_result = run(NO_PASSES, [0.0, 0.8])
    assert ops[:4] == plain[:4]  # datum 0's ops and updates are not delayed
    assert result.update_s[0].tolist() == plain_result.update_s[0].tolist() == [0.75, 0.5]
    assert plain[4][:4] == ("fwd", 1, 0, 0.8)
    assert ops[4] == ("fwd", 1, 0, 1.125, 1.125 + FWD)
    # stage 1's device is held until 0.5 + 0.375 = 0.875, before datum 1 gets there
    assert ops[5] == ("fwd", 1, 1, 1.25, 1.375)
    assert result.makespan_s == plain[-1][4] + (1.125 - 0.8) + (FWD + BWD)  # the last pass ends the run
    busy = np.asarray(result.utilisation) * result.makespan_s
    assert busy.tolist() == pytest.approx([2 * (FWD + BWD + FWD + BWD)] * 2)


def test_mas_pass_runs_at_a_stage_whose_backward_the_datum_omits():
    # omission at stage 0 (c^o = 1): datum 1's backward stops at stage 1, its pass still runs at stage 0
    workers = [WorkerConfig(0, False, (1, 1), (1, 0))]
    ops, result = run(AlgorithmPasses.at("after_backward", 1.0, 1.0), [0.0, 2.0, 4.0], workers)
    assert ("bwd", 1, 0) not in {op[:3] for op in ops}
    stage0 = [op for op in ops if op[2] == 0 and op[1] == 2]
    assert stage0[0][3] == 4.0  # datum 2 is not kept waiting: datum 1's pass ended at 2.125 + 0.375
    busy = np.asarray(result.utilisation) * result.makespan_s
    # stage 0: three forwards, two backwards, three passes; stage 1: three of each
    assert busy.tolist() == pytest.approx([3 * FWD + 2 * BWD + 3 * (FWD + BWD), 3 * 2 * (FWD + BWD)])


def test_passes_take_the_op_jitter_factor():
    passes = AlgorithmPasses.at("after_backward", 1.0, 1.0)
    _, jittered = run(passes, [0.0], jitter="lognormal", jitter_sigma=0.5)
    ops, _ = run(NO_PASSES, [0.0], jitter="lognormal", jitter_sigma=0.5)
    # one datum: each device's busy time is its two ops, each followed by a pass `(FWD + BWD)/BWD` times
    # as long as the backward, at the backward's factor
    bwd = {op[2]: op[4] - op[3] for op in ops if op[0] == "bwd"}
    fwd = {op[2]: op[4] - op[3] for op in ops if op[0] == "fwd"}
    busy = np.asarray(jittered.utilisation) * jittered.makespan_s
    assert busy.tolist() == pytest.approx([fwd[j] + bwd[j] * (1 + (FWD + BWD) / BWD) for j in range(2)])


def test_json_round_trip_and_bad_values():
    config = SimConfig(algorithm_passes=AlgorithmPasses(before_forwards=9.5, before_backwards=0.5, from_sample=3))
    assert SimConfig.from_json(config.to_json()) == config
    assert (
        SimConfig.from_json({k: v for k, v in SimConfig().to_json().items() if k != "algorithm_passes"}) == SimConfig()
    )
    with pytest.raises(ValidationError, match="algorithm_passes: unknown field"):
        SimConfig.from_json({"algorithm_passes": {"teacher": 1}})
    with pytest.raises(ValidationError, match="with_forward must be"):
        AlgorithmPasses(with_forward=-1.0)
    with pytest.raises(ValidationError, match="runs no backward"):
        AlgorithmPasses.at("with_forward", 1.0, 1.0)
    with pytest.raises(ValidationError, match="unknown phase"):
        AlgorithmPasses.at("later", 1.0, 0.0)
    with pytest.raises(ValidationError, match="algorithm_passes must be an AlgorithmPasses"):
        dataclasses.replace(SimConfig(), algorithm_passes={"with_forward": 1.0})
