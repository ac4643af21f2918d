"""Imports every built-in model module so that each registers itself."""

from executor.models import convnet, mlp, mnistnet, mobilenet, resnet  # noqa: F401
