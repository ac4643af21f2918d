"""`digits`: scikit-learn's 1,797 real 8×8 handwritten digits, shipped with the dependency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from executor.data.base import Dataset
from executor.data.registry import register_dataset


@register_dataset("digits")
def load_digits(root: Path | None = None, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """Pixels scaled to [0, 1], shape (1, 8, 8); a stratified train/test split fixed by `seed`."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    x, y = sk_load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = y.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, num_classes=10, stored_bytes_per_sample=64)
