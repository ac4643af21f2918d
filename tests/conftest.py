"""Shared test configuration.

Hypothesis runs derandomized in CI so a red run is reproducible; locally it explores.
torch is held to one thread per test process: the suite runs under pytest-xdist on 2 cores.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # planner/sim tests do not need torch
    pass
