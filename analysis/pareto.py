"""The Pareto rule every analysis figure marks: least cost for the most value.

A point is on the front when no other point costs at most as much and is worth at least as
much, one of the two strictly. Points with a NaN coordinate are never on it and dominate nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def non_dominated(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (cost, value) point: whether it is on the Pareto front (low cost, high value)."""
    valid = [not (math.isnan(cost) or math.isnan(value)) for cost, value in points]
    front = []
    for k, (cost, value) in enumerate(points):
        dominated = any(
            ok and other_cost <= cost and other_value >= value and (other_cost < cost or other_value > value)
            for ok, (other_cost, other_value) in zip(valid, points, strict=True)
        )
        front.append(valid[k] and not dominated)
    return front
