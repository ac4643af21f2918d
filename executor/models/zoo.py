"""Imports every built-in model module so that each registers itself."""

from executor.models import mlp, mnistnet  # noqa: F401
