"""Imports every built-in OCL algorithm so that each registers itself."""

from executor.ocl.algorithms import alsar, er, lwf, mas, mir  # noqa: F401
