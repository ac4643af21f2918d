"""`digits`: scikit-learn's 1,797 real 8×8 handwritten digits, shipped with the dependency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from executor.data.base import Dataset
from executor.data.registry import register_dataset
from executor.data.split import split_train_test


@register_dataset("digits")
def load_digits(root: Path | None = None, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """Pixels scaled to [0, 1], shape (1, 8, 8); a stratified train/test split fixed by `seed`."""
    from sklearn.datasets import load_digits as sk_load_digits

    x, y = sk_load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = y.astype(np.int64)
    x_tr, x_te, y_tr, y_te = split_train_test(x, y, test_fraction, seed, "digits")
    return Dataset("digits", x_tr, y_tr, x_te, y_te, num_classes=10, stored_bytes_per_sample=64)
