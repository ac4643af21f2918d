"""Which algorithms run with their stages on several ranks (placement.py)."""

from __future__ import annotations

import pytest

from executor.distributed.placement import ANYWHERE, check_algorithm
from executor.ocl.algorithms.base import algorithm_names
from planner.errors import FerretError


def test_every_algorithm_but_the_memory_first_one_runs_across_ranks():
    # aL-SAR is refused before (rank.check_run: its training forward predicts no datum).
    assert set(ANYWHERE) == set(algorithm_names()) - {"alsar"}
    for name in ANYWHERE:
        check_algorithm(name, (0, 1, 1))


def test_an_algorithm_without_a_per_stage_split_is_refused_in_one_line_across_ranks_only():
    check_algorithm("future", (0, 0, 0))  # one rank owns every stage: the whole model is there
    with pytest.raises(FerretError, match="algorithm future has no split of its work over stages") as refused:
        check_algorithm("future", (0, 1))
    assert "\n" not in str(refused.value)
