"""Imports every built-in data-set module so that each registers itself."""

from executor.data import digits  # noqa: F401
