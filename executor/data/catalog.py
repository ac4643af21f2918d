"""Imports every built-in data-set module so that each registers itself."""

from executor.data import cifar, covertype, digits, idx, image_folder, svhn, synthetic  # noqa: F401
