"""Oracle (SPEC §7): trains on every datum, in order, the moment it arrives — compute is free.

The upper bound of every framework: zero delay, nothing skipped. Memory: one model, its
optimizer, the algorithm's state and one datum's step.
"""

from __future__ import annotations

from executor.ocl.frameworks.base import FrameworkOptions, register_framework, reject_extra_options
from executor.ocl.loop import run_zero_delay
from executor.ocl.result import RunResult
from executor.ocl.setup import RunSetup


class Oracle:
    name = "oracle"
    replay_memories = 0

    def max_held(self, setup: RunSetup) -> int:
        """The datum being trained on."""
        return 1

    def run(self, setup: RunSetup) -> RunResult:
        return run_zero_delay(setup, self.name)


@register_framework("oracle")
def build_oracle(options: FrameworkOptions) -> Oracle:
    reject_extra_options("oracle", options)
    return Oracle()
