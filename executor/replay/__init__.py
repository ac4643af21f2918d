"""The replay executor: follow a trace (from the twin, or any file in the schema) op by op
against the StageRuntimes, with real data and real math. See docs/replay.md."""

from executor.replay.executor import ReplayExecutor
from executor.replay.trace_source import (
    GivenArrivals,
    check_rows,
    closing_backwards,
    execution_order,
    execution_plan,
    load_rows,
    simulate_rows,
)

__all__ = [
    "GivenArrivals",
    "ReplayExecutor",
    "check_rows",
    "closing_backwards",
    "execution_order",
    "execution_plan",
    "load_rows",
    "simulate_rows",
]
