"""Analysis: metrics, validation, calibration, what-if sweeps, plots and the `ferret` CLI.

The top of the import chain; nothing imports it except the console-script entry point.
"""
