"""A frozen copy of Alg. 2 + 3 as they were before the speed work of issue 14 (commit 29e551b).

Only the equivalence test (`tests/planner/test_fast_search.py`) and `benchmarks/planner_speed.py
--reference` use it: the package's planner must pick the same plans, and the benchmark prints its
time beside this one's. Not maintained; `diff planner/X.py tests/planner/reference_search/X.py`
shows what the speed work changed.
"""
