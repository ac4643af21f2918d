"""Calibration: fit the twin's timing model (`sim.config.SimConfig` and per-layer times) to
measured traces. One file per fitted component; `fit.calibrate` runs them in order."""

from analysis.calibrate.fit import Calibration, CalibrationOptions, MeasuredRun, calibrate, load_runs

__all__ = ["Calibration", "CalibrationOptions", "MeasuredRun", "calibrate", "load_runs"]
