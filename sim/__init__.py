"""The twin: predicts a plan's adaptation rate, memory, latency and drops on a stream.

`simulate(plan, profile, samples, arrivals=None, seed=0, config=SimConfig(), trace=None, costs=None)`
returns a `SimResult`; `FileTrace` streams the op-level schedule to a file (binary `.ftrace`, or
the JSON Lines / CSV exports); `read_trace` reads any of them as `TraceRow`s.
"""

from sim.config import SimConfig
from sim.result import SimResult
from sim.simulate import simulate
from sim.strategies import SIM_STRATEGIES, sequential_plan
from sim.trace import FileTrace, MemoryTrace, NullTrace, TraceRow, read_trace

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
