"""Shared test configuration.

Hypothesis runs derandomized in CI so a red run is reproducible; locally it explores; the
`fuzz` profile runs the CLI fuzz suite ten times longer.
torch is held to one thread per test process: the suite runs under pytest-xdist on 2 cores.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A long local hunt (`pytest --hypothesis-profile fuzz tests/e2e/test_fuzz_cli.py`): ten times the examples.
settings.register_profile("fuzz", max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # planner/sim tests do not need torch
    pass
