"""The byte ledger against Ferret's closed-form footprint (F4), in the closed form's regime.

Regime: a balanced profile (equal layers; the input as large as each layer's output, so the
stage input kept under recomputation is as large as the first layer's output that F4 counts),
every (worker, stage) on its own device, `td` = cycle / N, datum `i` to worker `i mod N`,
1F1B per worker, an op's memory effect applied when it completes (forwards before backwards
at one instant). Weights + activations only: plain SGD has no optimizer state, `c^a = 1` no
accumulation buffer and `none` no compensator buffer. See docs/executor.md §Accounting.
"""

from __future__ import annotations

import math

import pytest
import torch

from executor.ledger import ByteLedger
from executor.profiler.trace import activation_bytes, parameter_bytes
from executor.stage import StageRuntime
from planner.closed_form import memory_bytes, stage_sizes, stored_versions
from planner.plan import Plan, WorkerConfig, default_placement
from planner.profile import LayerProfile, ModelProfile
from tests.executor.stage.models import linear_chain
from tests.executor.stage.schedules import async_1f1b, drive

LAYERS, WIDTH = 6, 4


def _profile(model) -> ModelProfile:
    layers = tuple(
        LayerProfile(f"fc{i}", 1.0, 2.0, p, a)
        for i, (p, a) in enumerate(zip(parameter_bytes(model), activation_bytes(model), strict=True))
    )
    return ModelProfile("linear-chain", layers, source="synthetic")


def _f4_per_stage(profile: ModelProfile, plan: Plan) -> list[int]:
    w, a, s = stage_sizes(profile, plan.partition)
    return [
        sum(
            stored_versions(plan, n, i) * int(w[i] + a[i] - (s[i] if worker.recompute else 0))
            for n, worker in enumerate(plan.workers)
            if worker.active
        )
        for i in range(plan.num_stages)
    ]


def _measure(P: int, workers: list[WorkerConfig], tf: int, tb: int, td: int, num_data: int = 60):
    model = linear_chain(LAYERS, WIDTH)
    profile = _profile(model)
    plan = Plan(
        "ferret", tuple(range(0, LAYERS + 1, LAYERS // P)), tuple(workers), default_placement(len(workers), P), 1.0
    )
    ledger = ByteLedger()
    runtimes = [StageRuntime(model, plan, j, ledger=ledger) for j in range(P)]
    peaks = [dict.fromkeys(("weights", "activations", "accumulation", "total"), 0) for _ in range(P)]
    pipeline_peak = 0  # weights + activations of all stages at one instant

    def on_op(op, result):
        nonlocal pipeline_peak
        for rt, peak in zip(runtimes, peaks, strict=True):
            for category in ("weights", "activations", "accumulation"):
                peak[category] = max(peak[category], rt.held_bytes(category))
            peak["total"] = max(peak["total"], rt.held_bytes("weights") + rt.held_bytes("activations"))
        pipeline_peak = max(pipeline_peak, ledger.held("weights") + ledger.held("activations"))

    X = torch.randn(num_data, 1, WIDTH, generator=torch.Generator().manual_seed(0))
    drive(runtimes, async_1f1b(P, len(workers), num_data, tf, tb, td), X.__getitem__, lambda s, z: z.mean(), on_op)
    # Besides weights and activations a stage holds, with c^a > 1, one flat gradient buffer
    # (w_j, made on first need) and the open accumulation groups; F4 counts neither. Without
    # compensation or accumulation the gradients are transient (autograd's, consumed by the step).
    accumulates = any(max(w.accumulation) > 1 for w in workers)
    expected = {"weights", "activations"} | ({"gradients", "accumulation"} if accumulates else set())
    assert set(ledger.peaks()) == expected
    if accumulates:
        assert ledger.held("gradients") == sum(rt.layout.nbytes for rt in runtimes)
    f4 = _f4_per_stage(profile, plan)
    assert sum(f4) == memory_bytes(profile, plan)
    w, a, s = stage_sizes(profile, plan.partition)
    return peaks, f4, pipeline_peak, (w, a, s), memory_bytes(profile, plan)


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("N", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("P", [1, 2, 3])
def test_each_stage_peak_is_f4_less_the_workers_still_in_their_forward(P, N, recompute):
    tf, tb = N, 2 * N
    td = (2 * tf + tb if recompute else tf + tb) // N  # exactly N workers: N = cycle / td
    workers = [WorkerConfig.default(n, P, recompute) for n in range(N)]
    peaks, f4, _, (w, a, s), _ = _measure(P, workers, tf, tb + (tf if recompute else 0), td)
    # F4 charges every worker P − j stored data at stage j at once. A worker's datum is held
    # from the end of its forward to the end of its backward, (P − j)·cycle − tf long; N
    # workers staggered by td overlap at most N(P − j) − (⌈tf/td⌉ − 1) such spans. So the
    # store equals F4 while tf ≤ td and holds ⌈tf/td⌉ − 1 fewer (version + activation) pairs
    # per stage beyond that.
    missing = math.ceil(tf / td) - 1
    for j in range(P):
        per_datum = int(w[j] + a[j] - (s[j] if recompute else 0))
        assert peaks[j]["total"] == f4[j] - missing * per_datum, f"stage {j}"
        assert peaks[j]["weights"] == (N * (P - j) - missing) * int(w[j])


@pytest.mark.parametrize("P", [2, 3])
def test_pipedream_whole_pipeline_peak_equals_f4(P):
    _, _, total_peak, _, f4 = _measure(P, [WorkerConfig.default(0, P)], tf=1, tb=2, td=3)
    assert total_peak == f4


@pytest.mark.parametrize("omission", [(1, 0, 0), (1, 1, 0), (2, 1, 0), (2, 0, 0)])
def test_omission_plans_of_the_search_match_f4_stage_by_stage(omission):
    peaks, f4, _, _, _ = _measure(3, [WorkerConfig(0, False, (1, 1, 1), omission)], tf=1, tb=2, td=3)
    assert [p["total"] for p in peaks] == f4


def test_f4_overcounts_a_stage_below_an_omitting_stage():
    # c^o = (0, 1, 0): stage 1 back-propagates every other datum, so stage 0 (no omission of
    # its own) receives only those. F4's v_0 = 1 + 2 − 0 = 3 ignores the omission above; of
    # the 3 data in flight at stage 0 at most 2 are ever back-propagated there.
    peaks, f4, _, (w, a, _), _ = _measure(3, [WorkerConfig(0, False, (1, 1, 1), (0, 1, 0))], tf=1, tb=2, td=3)
    assert f4[0] == 3 * int(w[0] + a[0])
    assert peaks[0]["total"] == 2 * int(w[0] + a[0])
    assert [p["total"] for p in peaks[1:]] == f4[1:]


@pytest.mark.parametrize("accumulation", [2, 3])
def test_f4_undercounts_activations_under_accumulation(accumulation):
    # Accumulation cuts weight versions (v = 1 + ⌈(P−j−1)/c^a⌉) but not the data in flight:
    # 1F1B still keeps P − j activations at stage j; F4 multiplies the activations by v too.
    # The open accumulation group's gradient buffer (one w_j) is not in F4 either.
    P = 3
    worker = WorkerConfig(0, False, (accumulation,) * P, (0,) * P)
    peaks, f4, _, (w, a, _), _ = _measure(P, [worker], tf=1, tb=2, td=3)
    for j in range(P):
        v = 1 + math.ceil((P - j - 1) / accumulation)
        assert f4[j] == v * int(w[j] + a[j])
        assert peaks[j]["weights"] == v * int(w[j])
        assert peaks[j]["activations"] == (P - j) * int(a[j])
        assert peaks[j]["accumulation"] == int(w[j])
