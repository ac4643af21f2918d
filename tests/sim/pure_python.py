"""Run code in a fresh interpreter where the twin runs pure Python (`FERRET_PURE_PYTHON=1`).

The compiled modules (planner.native) cannot be monkeypatched and ignore a patched module global,
so a test that swaps engine code, or compares compiled with interpreted runs, runs its
interpreted half here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_pure(code: str, timeout: float = 300) -> str:
    """Stdout of `code` run by `python -c` with the twin in pure Python; fails the test on an error."""
    env = {**os.environ, "FERRET_PURE_PYTHON": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
