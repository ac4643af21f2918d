"""Imports every built-in OCL algorithm so that each registers itself."""

from executor.ocl.algorithms import er, lwf, mas, mir  # noqa: F401
