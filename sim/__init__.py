"""The twin: predicts a plan's adaptation rate, memory, latency and drops on a stream.

`simulate(plan, profile, samples, arrivals=None, seed=0, config=SimConfig(), trace=None, costs=None)`
returns a `SimResult`; `FileTrace` streams the op-level schedule to a file (binary `.ftrace`, or
the JSON Lines / CSV exports); `read_trace` reads any of them as `TraceRow`s.
"""

from planner.native import guard

guard(__name__, __file__)  # first: a compiled module whose source changed since its build must not load

from sim.config import SimConfig  # noqa: E402
from sim.result import SimResult  # noqa: E402
from sim.simulate import simulate  # noqa: E402
from sim.strategies import SIM_STRATEGIES, sequential_plan  # noqa: E402
from sim.trace import FileTrace, MemoryTrace, NullTrace, TraceRow, read_trace  # noqa: E402

__all__ = [
    "SIM_STRATEGIES",
    "FileTrace",
    "MemoryTrace",
    "NullTrace",
    "SimConfig",
    "SimResult",
    "TraceRow",
    "read_trace",
    "sequential_plan",
    "simulate",
]
