"""Models as partitionable layer sequences, built by name from a registry."""

from executor.models.base import LayeredModel
from executor.models.registry import MODELS, build_model, register_model

__all__ = ["MODELS", "LayeredModel", "build_model", "register_model"]
