"""Alg. 3's caps and greedy partitions (SPEC §4.2)."""

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.partition import candidate_partitions, greedy_partition, layer_times, stage_time_caps
from planner.profile import LayerProfile, ModelProfile
from tests.planner.profiles import hand_profile, profiles


def fits(times, start, stop, cap) -> bool:
    """A stage fits a cap if its time is within it, or if it is a single layer."""
    return stop - start == 1 or math.fsum(times[start:stop]) <= cap * (1 + 1e-9)


def min_stages(times, cap) -> int:
    """Fewest stages over all contiguous partitions where every stage fits (dynamic program)."""
    n = len(times)
    best = [0] + [math.inf] * n
    for stop in range(1, n + 1):
        for start in range(stop):
            if fits(times, start, stop, cap):
                best[stop] = min(best[stop], best[start] + 1)
    return int(best[n])


def test_caps_of_hand_profile():
    # layer times 3, 5, 1.5 → ranges 3, 5, 1.5, 8, 6.5, 9.5
    assert stage_time_caps(hand_profile()).tolist() == [1.5, 3.0, 5.0, 6.5, 8.0, 9.5]
    assert greedy_partition(hand_profile(), 1.5) == (0, 1, 2, 3)  # every layer alone
    assert greedy_partition(hand_profile(), 6.5) == (0, 1, 3)
    assert greedy_partition(hand_profile(), 8.0) == (0, 2, 3)
    assert greedy_partition(hand_profile(), 9.5) == (0, 3)
    assert candidate_partitions(hand_profile()) == [(0, 1, 2, 3), (0, 1, 3), (0, 2, 3), (0, 3)]


def test_equal_layers_give_stages_of_k_layers():
    profile = ModelProfile("eq", tuple(LayerProfile(f"l{i}", 1.0, 1.0, 1, 1) for i in range(12)), source="synthetic")
    caps = stage_time_caps(profile)
    assert caps.tolist() == [2.0 * k for k in range(1, 13)]
    # cap 2k: stages of k layers, the last one shorter
    expected = [(*range(0, 12, k), 12) for k in range(1, 13)]
    assert candidate_partitions(profile) == expected


@settings(max_examples=40)
@given(profiles(max_layers=24), st.data())
def test_greedy_is_the_minimum_p_partition_for_its_cap(profile, data):
    caps = stage_time_caps(profile)
    times = layer_times(profile).tolist()
    for cap in data.draw(st.lists(st.sampled_from(caps.tolist()), min_size=1, max_size=5)):
        part = greedy_partition(profile, cap)
        assert part[0] == 0 and part[-1] == profile.num_layers
        assert all(b > a for a, b in itertools.pairwise(part))
        assert all(fits(times, a, b, cap) for a, b in itertools.pairwise(part))
        assert len(part) - 1 == min_stages(times, cap)


@settings(max_examples=30)
@given(profiles(max_layers=40))
def test_candidates_are_distinct_valid_and_include_the_extremes(profile):
    caps = stage_time_caps(profile)
    L = profile.num_layers
    assert len(caps) <= L * (L + 1) // 2
    assert all(b > a for a, b in itertools.pairwise(caps))
    parts = candidate_partitions(profile)
    assert len(parts) == len(set(parts))
    assert parts[-1] == (0, L)  # the largest cap holds the whole model
    assert parts[0] == tuple(range(L + 1))  # the smallest cap isolates every layer
    # Each distinct partition once, in the order of the smallest cap giving it (the table of all
    # caps at once, against one cap at a time).
    assert parts == list(dict.fromkeys(greedy_partition(profile, c) for c in caps.tolist()))
