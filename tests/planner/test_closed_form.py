"""(F3) and (F4) against values computed by hand (SPEC §3.3), P = 1, 2, 3, each technique."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.closed_form import (
    adaptation_rate,
    arrival_limited_rate,
    memory_bytes,
    num_workers,
    stage_sizes,
    stage_times,
    stored_versions,
    suffix_lcm_reciprocal,
)
from planner.plan import REMOVED, Plan, WorkerConfig, default_placement
from planner.profile import ModelProfile
from tests.planner.profiles import hand_profile, profiles

C = 0.1  # decay per second in every hand case
E = math.exp

# hand_profile(): l0 (tf 1, tb 2, w 100, a 10), l1 (2, 3, 200, 20), l2 (0.5, 1, 50, 5)


def plan(partition, *workers, value=1.0) -> Plan:
    P = len(partition) - 1
    return Plan(
        "ferret", partition, workers, default_placement(len(workers), P), 1.0, decay_per_s=C, value_per_datum=value
    ).validate(3)


def worker(P, acc=None, omit=None, recompute=False, offset=0) -> WorkerConfig:
    return WorkerConfig(offset, recompute, acc or (1,) * P, omit or (0,) * P)


def test_stage_times_and_sizes():
    p = hand_profile()
    assert stage_times(p, (0, 1, 3)) == (2.5, 4.0)
    assert stage_times(p, (0, 3)) == (3.5, 6.0)
    w, a, s = stage_sizes(p, (0, 1, 3))
    assert (w.tolist(), a.tolist(), s.tolist()) == ([100, 250], [10, 25], [0, 5])


def test_num_workers_rounds_up_but_not_on_float_noise():
    p = hand_profile()
    assert num_workers(p, (0, 1, 2, 3), 1.0, False) == 5  # cycle tf + tb = 2 + 3
    assert num_workers(p, (0, 1, 2, 3), 2.0, False) == 3
    assert num_workers(p, (0, 1, 2, 3), 5 / 3, False) == 3  # 5 / (5/3) = 3.0000000000000004
    assert num_workers(p, (0, 1, 2, 3), 1.0, True) == 7  # + c^r·tf
    assert num_workers(p, (0, 1, 2, 3), 100.0, False) == 1


# ------------------------------------------------------------------ P = 1: stage [l0 l1 l2]
# tf = 3.5, tb = 6, cycle 9.5; delay of A_{0,j} = (1+j)·3.5 + (1+j)·6; s_0 = 20 + 5
def test_p1_no_technique():
    pl = plan((0, 3), worker(1))
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(E(-0.95) / 9.5, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 350 + 35


def test_p1_recompute():
    pl = plan((0, 3), worker(1, recompute=True))
    # delay 3.5 + (6 + 3.5), cycle 13
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(E(-1.3) / 13, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 385 - 25


def test_p1_accumulation():
    pl = plan((0, 3), worker(1, acc=(2,)))
    assert adaptation_rate(hand_profile(), pl) == pytest.approx((E(-0.95) + E(-1.9)) / (2 * 9.5), rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 385  # ⌈0/2⌉ = 0: still one version


def test_p1_value_and_two_workers_scale_linearly():
    one = adaptation_rate(hand_profile(), plan((0, 3), worker(1)))
    pl = plan((0, 3), worker(1), worker(1, offset=1), value=3.0)
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(6 * one, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 2 * 385


# ------------------------------------------------------------------ P = 2: [l0] [l1 l2]
# tf = 2.5, tb = 4, cycle 6.5, shares 100/350 and 250/350, stage bytes 110 and 275, s = (0, 5)
W0, W1 = 100 / 350, 250 / 350


def test_p2_no_technique():
    pl = plan((0, 1, 3), worker(2))
    expected = W0 * E(-C * (2 * 2.5 + 2 * 4)) / 6.5 + W1 * E(-C * (2 * 2.5 + 1 * 4)) / 6.5
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(expected, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 2 * 110 + 1 * 275  # v = (2, 1)


def test_p2_omission():
    pl = plan((0, 1, 3), worker(2, omit=(1, 0)))
    expected = W0 * E(-1.3) / (2 * 6.5) + W1 * E(-0.9) / 6.5  # LCM_0 = 2
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(expected, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 110 + 275


def test_p2_accumulation():
    pl = plan((0, 1, 3), worker(2, acc=(2, 1)))
    # A_{0,j}: (2+j)·2.5 + (2+j)·4 → 1.3 and 1.95
    expected = W0 * (E(-1.3) + E(-1.95)) / (2 * 6.5) + W1 * E(-0.9) / 6.5
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(expected, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 2 * 110 + 275  # ⌈1/2⌉ = 1: no version saved


def test_p2_recompute():
    pl = plan((0, 1, 3), worker(2, recompute=True))
    # cycle 9; stage 0: 2·2.5 + 2·4 + 2·2.5 = 18; stage 1: 5 + 4 + 2.5 = 11.5
    expected = W0 * E(-1.8) / 9 + W1 * E(-1.15) / 9
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(expected, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 2 * 110 + (275 - 5)


def test_p2_removed_worker_counts_nothing():
    alone = plan((0, 1, 3), worker(2))
    pl = plan((0, 1, 3), worker(2), WorkerConfig(REMOVED, False, (1, 1), (1, 0)))
    assert adaptation_rate(hand_profile(), pl) == adaptation_rate(hand_profile(), alone)
    assert memory_bytes(hand_profile(), pl) == memory_bytes(hand_profile(), alone)


# ------------------------------------------------------------------ P = 3: one layer per stage
# tf = 2, tb = 3, cycle 5; A_{i,0} exponent 3·2 + (3-i)·3 → 1.5, 1.2, 0.9; shares 100, 200, 50 / 350
S = (100 / 350, 200 / 350, 50 / 350)


def test_p3_no_technique():
    pl = plan((0, 1, 2, 3), worker(3))
    expected = (S[0] * E(-1.5) + S[1] * E(-1.2) + S[2] * E(-0.9)) / 5
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(expected, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 3 * 110 + 2 * 220 + 1 * 55


def test_p3_full_omission():
    pl = plan((0, 1, 2, 3), worker(3, omit=(2, 1, 0)))
    # LCM_0 = lcm(3, 2, 1) = 6, LCM_1 = 2, LCM_2 = 1; one version everywhere
    expected = S[0] * E(-1.5) / 30 + S[1] * E(-1.2) / 10 + S[2] * E(-0.9) / 5
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(expected, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 110 + 220 + 55


def test_p3_partial_omission():
    pl = plan((0, 1, 2, 3), worker(3, omit=(1, 0, 0)))
    expected = (S[0] * E(-1.5) / 2 + S[1] * E(-1.2) + S[2] * E(-0.9)) / 5
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(expected, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 2 * 110 + 2 * 220 + 55  # v_0 = 1 + 2 - 1


def test_p3_accumulation():
    pl = plan((0, 1, 2, 3), worker(3, acc=(2, 1, 1)))
    # A_{0,1}: (3+1)·2 + (3+1)·3 = 20 → 2.0
    expected = (S[0] * (E(-1.5) + E(-2.0)) / 2 + S[1] * E(-1.2) + S[2] * E(-0.9)) / 5
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(expected, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 2 * 110 + 2 * 220 + 55  # 1 + ⌈2/2⌉


def test_p3_recompute_saves_nothing_with_one_layer_stages():
    pl = plan((0, 1, 2, 3), worker(3, recompute=True))
    # cycle 7; exponents 3·2 + (3-i)·(3+2) → 2.1, 1.6, 1.1
    expected = (S[0] * E(-2.1) + S[1] * E(-1.6) + S[2] * E(-1.1)) / 7
    assert adaptation_rate(hand_profile(), pl) == pytest.approx(expected, rel=1e-12)
    assert memory_bytes(hand_profile(), pl) == 825


def test_stored_versions():
    pl = plan((0, 1, 2, 3), worker(3), worker(3, acc=(2, 1, 1), omit=(0, 1, 0), offset=1))
    assert [stored_versions(pl, 0, j) for j in range(3)] == [3, 2, 1]
    assert [stored_versions(pl, 1, j) for j in range(3)] == [2, 1, 1]


def test_lcm_stays_exact_beyond_int64():
    omission = tuple(range(63, -1, -1))  # factors 64, 63, ..., 1: lcm(1..64) ≈ 4.4e26
    inv = suffix_lcm_reciprocal(omission)
    lcm = math.lcm(*range(1, 65))
    assert inv[0] == pytest.approx(1 / lcm, rel=1e-12)
    assert inv[-1] == 1.0


@settings(max_examples=30)
@given(profiles(max_layers=12), st.data())
def test_plan_and_profile_json_round_trip(profile, data):
    assert ModelProfile.from_json(json.loads(json.dumps(profile.to_json()))) == profile
    L = profile.num_layers
    cuts = data.draw(st.sets(st.integers(1, L - 1), max_size=L - 1)) if L > 1 else set()
    part = (0, *sorted(cuts), L)
    P = len(part) - 1
    n = data.draw(st.integers(1, 4))
    workers = tuple(
        WorkerConfig(
            k,
            data.draw(st.booleans()),
            tuple(data.draw(st.integers(1, 5)) for _ in range(P)),
            tuple(data.draw(st.integers(0, P - 1 - j)) for j in range(P)),
        )
        for k in range(n)
    )
    pl = Plan("ferret", part, workers, default_placement(n, P), 1e-3).with_prediction(1.5, 123, True)
    again = Plan.from_json(json.loads(json.dumps(pl.to_json())))
    assert again == pl
    assert adaptation_rate(profile, again) == adaptation_rate(profile, pl)


def test_arrival_limited_rate_caps_each_worker_by_its_arrivals():
    one = plan((0, 1, 2, 3), worker(3))  # cycle 5 s, td 1 s: one worker, one datum per cycle
    f3 = adaptation_rate(hand_profile(), one)
    assert arrival_limited_rate(hand_profile(), one) == f3
    slow = Plan("ferret", (0, 1, 2, 3), (worker(3),), default_placement(1, 3), 10.0, decay_per_s=C)
    assert arrival_limited_rate(hand_profile(), slow) == pytest.approx(f3 / 2, rel=1e-12)  # 5 s / 10 s
    two = Plan("ferret", (0, 1, 2, 3), (worker(3), WorkerConfig(REMOVED, False, (1, 1, 1), (2, 1, 0))),
               default_placement(2, 3), 4.0, decay_per_s=C)  # fmt: skip
    assert arrival_limited_rate(hand_profile(), two) == pytest.approx(f3 * 5 / 8, rel=1e-12)  # one datum per 8 s
