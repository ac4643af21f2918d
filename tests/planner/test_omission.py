"""The omission rule (SPEC §3.2): which stages worker-datum k trains, against its literal definition."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from planner.omission import backward_every, bottom_stage


def test_backward_every_is_the_suffix_lcm():
    assert backward_every((2, 1, 0)) == (6, 2, 1)
    assert backward_every((0, 0, 0, 0)) == (1, 1, 1, 1)
    assert backward_every((3, 0, 1, 0)) == (4, 2, 2, 1)


def test_bottom_stage_exact_cases():
    every = backward_every((1, 2, 0))  # (6, 3, 1)
    assert [bottom_stage(every, k) for k in range(7)] == [0, 2, 2, 1, 2, 2, 0]


@st.composite
def omissions(draw: st.DrawFn) -> tuple[int, ...]:
    P = draw(st.integers(1, 6))
    return tuple(draw(st.integers(0, P - 1 - j)) for j in range(P))


@given(omissions(), st.integers(0, 500))
def test_a_datum_skipped_at_a_stage_skips_every_stage_below(omission, k):
    # Literal SPEC §3.2: stage j runs datum k iff k mod (c^o_j + 1) == 0 and the stage above ran it.
    P = len(omission)
    runs = [False] * P
    above = True
    for j in range(P - 1, -1, -1):
        runs[j] = above and k % (omission[j] + 1) == 0
        above = runs[j]
    b = bottom_stage(backward_every(omission), k)
    assert runs == [j >= b for j in range(P)]
