"""Imports every built-in framework so that each registers itself (add pipeline frameworks here)."""

from executor.ocl.frameworks import bskip, budgeted, camel, one_skip, oracle, pipeline  # noqa: F401
