"""(F19)–(F22) as printed versus the recomputed (F3)/(F4) differences (docs/planner.md §4)."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from planner.deltas import Step, applicable, apply_step, printed_delta, recomputed_delta, s2_increment
from planner.errors import ValidationError
from planner.plan import Plan, WorkerConfig, default_placement
from tests.planner.profiles import profiles, uniform_profile


def one_worker(P, acc=None, omit=None, recompute=False, decay=0.1) -> Plan:
    w = WorkerConfig(0, recompute, acc or (1,) * P, omit or (0,) * P)
    return Plan("ferret", tuple(range(P + 1)), (w,), default_placement(1, P), 1.0, decay_per_s=decay)


def test_s2_increment_is_the_smallest_step_that_removes_a_version():
    assert s2_increment(6, 0, 1) == 1  # K = 5: ⌈5/1⌉ = 5 → ⌈5/2⌉ = 3 (two versions at once)
    assert s2_increment(6, 0, 2) == 1  # 3 → ⌈5/3⌉ = 2
    assert s2_increment(6, 0, 3) == 2  # 2 → ⌈5/5⌉ = 1
    assert s2_increment(6, 0, 5) is None  # one version left: S3's turn
    assert s2_increment(3, 2, 1) is None  # last stage: nothing behind it
    for K in range(1, 40):
        acc = 1
        while (delta := s2_increment(K + 1, 0, acc)) is not None:
            before, after = -(-K // acc), -(-K // (acc + delta))
            assert after < before
            assert all(-(-K // a) == before for a in range(acc, acc + delta))  # nothing smaller works
            acc += delta
        assert -(-K // acc) == 1


def test_s2_printed_memory_disagrees_when_two_versions_go():
    profile, plan = uniform_profile(6), one_worker(6)
    step = Step("S2", 0, 0)
    printed, recomputed = printed_delta(profile, plan, step), recomputed_delta(profile, plan, step)
    assert printed[1] == -110 and recomputed[1] == -220  # documented counter-example
    assert printed[0] == pytest.approx(recomputed[0], rel=1e-9)
    assert recomputed[0] == pytest.approx(-0.0011900683, rel=1e-7)


def test_s3_printed_rate_disagrees_on_range_and_reset():
    profile, plan = uniform_profile(3), one_worker(3, acc=(2, 1, 1))
    step = Step("S3", 0, 0)
    printed, recomputed = printed_delta(profile, plan, step), recomputed_delta(profile, plan, step)
    assert printed[0] == pytest.approx(-0.10792577, rel=1e-6)
    assert recomputed[0] == pytest.approx(-0.02426208, rel=1e-6)
    assert printed[1] == recomputed[1] == -110


def test_s3_agrees_when_ranges_coincide():
    profile, plan = uniform_profile(3), one_worker(3)
    step = Step("S3", 0, 1)  # [0, P-1-j] = [0, j] and c^a = 1
    assert printed_delta(profile, plan, step) == pytest.approx(recomputed_delta(profile, plan, step), rel=1e-9)


def test_steps_refuse_when_not_applicable():
    plan = one_worker(3)
    assert not applicable(plan, Step("S3", 0, 0))  # S2 still has a step at stage 0
    assert not applicable(plan, Step("S4", 0))  # stages still store old versions
    assert not applicable(plan, Step("S2", 0, 2))  # last stage
    with pytest.raises(ValidationError, match="not applicable"):
        apply_step(plan, Step("S3", 0, 0))
    with pytest.raises(ValidationError, match="unknown step"):
        apply_step(plan, Step("S9", 0))


@st.composite
def worker_states(draw, min_stages: int = 1):
    """A random one-worker state reachable by S2/S3 steps (plus random recompute)."""
    profile = draw(profiles(min_layers=min_stages, max_layers=7))
    L = profile.num_layers
    cuts = draw(st.sets(st.integers(1, L - 1), min_size=min_stages - 1, max_size=L - 1)) if L > 1 else set()
    part = (0, *sorted(cuts), L)
    P = len(part) - 1
    w = WorkerConfig(0, draw(st.booleans()), (1,) * P, (0,) * P)
    decay = draw(st.sampled_from([0.0, 0.5, 5.0, 50.0]))
    plan = Plan("ferret", part, (w,), default_placement(1, P), 1e-3, decay_per_s=decay)
    for _ in range(draw(st.integers(0, 4))):
        steps = [Step(k, 0, j) for k in ("S2", "S3") for j in range(P) if applicable(plan, Step(k, 0, j))]
        if not steps:
            break
        plan = apply_step(plan, draw(st.sampled_from(steps)))
    return profile, plan


def _close(a, b):
    return a == pytest.approx(b, rel=1e-9, abs=1e-12 * max(1.0, abs(a), abs(b)))


@settings(max_examples=60)
@given(worker_states())
def test_s1_and_s4_agree_with_recomputed_differences(state):
    profile, plan = state
    for step in (Step("S1", 0), Step("S4", 0)):
        if applicable(plan, step):
            (pr, pm), (rr, rm) = printed_delta(profile, plan, step), recomputed_delta(profile, plan, step)
            assert pm == rm
            assert _close(pr, rr)


@settings(max_examples=60)
@given(worker_states(min_stages=3), st.data())
def test_s2_rate_agrees_and_memory_agrees_exactly_when_one_version_goes(state, data):
    profile, plan = state
    stages = [j for j in range(plan.num_stages) if applicable(plan, Step("S2", 0, j))]
    assume(stages)
    step = Step("S2", 0, data.draw(st.sampled_from(stages)))
    (pr, pm), (rr, rm) = printed_delta(profile, plan, step), recomputed_delta(profile, plan, step)
    assert _close(pr, rr)
    acc = plan.workers[0].accumulation[step.stage]
    K = plan.num_stages - step.stage - 1
    removed = -(-K // acc) - -(-K // (acc + s2_increment(plan.num_stages, step.stage, acc)))
    assert rm == removed * pm  # the printed ΔM is exactly one version's bytes
    assert (pm == rm) == (removed == 1 or pm == 0)


@settings(max_examples=60)
@given(worker_states(min_stages=2), st.data())
def test_s3_memory_agrees_and_rate_agrees_exactly_in_the_documented_case(state, data):
    profile, plan = state
    stages = [j for j in range(plan.num_stages) if applicable(plan, Step("S3", 0, j))]
    assume(stages)
    j = data.draw(st.sampled_from(stages))
    step = Step("S3", 0, j)
    (pr, pm), (rr, rm) = printed_delta(profile, plan, step), recomputed_delta(profile, plan, step)
    assert pm == rm
    P, acc = plan.num_stages, plan.workers[0].accumulation
    if j == P - 1 - j and acc[j] == 1:  # printed range [0, P-1-j] is then [0, j], and no reset
        assert _close(pr, rr)
