"""A seeded train/test split with the fraction checked first (scikit-learn's own errors are
not a user's message): both parts must hold a row, and the split is stratified by label when
every class has two rows and each part can hold one of each class."""

from __future__ import annotations

import math

import numpy as np

from planner.errors import FerretError


def split_train_test(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`(x_train, x_test, y_train, y_test)`; `test_fraction` of the rows go to the test part."""
    if not (isinstance(test_fraction, int | float) and 0 < test_fraction < 1):
        raise FerretError(f"{name}: test_fraction must lie in (0, 1), got {test_fraction!r}")
    n = len(y)
    n_test = math.ceil(test_fraction * n)
    if n_test < 1 or n - n_test < 1:
        raise FerretError(f"{name}: test_fraction {test_fraction} of {n} rows leaves no training or no test row")
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(y, return_counts=True)
    stratified = counts.min() >= 2 and min(n_test, n - n_test) >= len(classes)
    parts = train_test_split(x, y, test_size=n_test, random_state=seed, stratify=y if stratified else None)
    return parts[0], parts[1], parts[2], parts[3]
