"""`ferret deploy`'s stream lengths: by default so many seconds of stream at the plan's interval."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.deploy.loop import PROBE_S, RUN_S, DeploySpec
from planner.errors import FerretError
from planner.limits import raised_limits


def test_default_lengths_are_seconds_of_stream_at_the_interval():
    assert DeploySpec().lengths(1e-3) == (round(RUN_S / 1e-3), round(PROBE_S / 1e-3))
    assert DeploySpec().lengths(0.7) == (5, 2)  # ⌈3 / 0.7⌉, ⌈1 / 0.7⌉: whole data, never zero
    assert DeploySpec().lengths(60.0) == (1, 1)


def test_given_lengths_win():
    assert DeploySpec(samples=7, probe_samples=3).lengths(1e-6) == (7, 3)
    assert DeploySpec(samples=7).lengths(1e-3) == (7, round(PROBE_S / 1e-3))


def test_the_work_limit_counts_the_probe_only_when_one_runs():
    run, _ = DeploySpec().lengths(1e-3)
    with raised_limits(max_events=run):
        DeploySpec(calibration=Path("cal")).lengths(1e-3)  # no probe: within the limit
        with pytest.raises(FerretError, match="deploying .the probe and the run. needs"):
            DeploySpec().lengths(1e-3)
