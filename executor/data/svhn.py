"""SVHN (cropped digits) from `train_32x32.mat` / `test_32x32.mat` (MATLAB v5, via scipy.io).

Each file holds `X` (32 × 32 × 3 × N uint8) and `y` (N × 1, digits 1..10 where 10 means 0).
`extra=True` appends `extra_32x32.mat` to the training set. Pixels are scaled to [0, 1],
shape (3, 32, 32); a replay slot stores 3,072 bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from executor.data.base import Dataset
from executor.data.files import find_file, require_root
from executor.data.registry import register_dataset
from planner.errors import FerretError


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        mat = scipy.io.loadmat(path)
    except FileNotFoundError:
        raise FerretError(f"file not found: {path}") from None
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError... for corrupt files
        raise FerretError(f"cannot read {path} as a MATLAB file: {exc}") from None
    if "X" not in mat or "y" not in mat:
        raise FerretError(f"{path} lacks the 'X' and 'y' arrays of an SVHN file")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise FerretError(f"{path}: expected X of shape 32×32×3×N and N labels, got {x.shape} and {len(y)}")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise FerretError(f"{path}: SVHN labels must be 1..10, found {y.min()}..{y.max()}")
    images = x.transpose(3, 2, 0, 1).astype(np.float32) / 255.0
    return np.ascontiguousarray(images), y % 10


@register_dataset("svhn")
def load_svhn(root: Path | None, seed: int = 0, extra: bool = False) -> Dataset:
    folder = require_root(root, "svhn", "train_32x32.mat and test_32x32.mat")
    x_train, y_train = read_svhn_mat(find_file(folder, ["train_32x32.mat"]))
    if extra:
        x_extra, y_extra = read_svhn_mat(find_file(folder, ["extra_32x32.mat"]))
        x_train, y_train = np.concatenate([x_train, x_extra]), np.concatenate([y_train, y_extra])
    x_test, y_test = read_svhn_mat(find_file(folder, ["test_32x32.mat"]))
    return Dataset("svhn", x_train, y_train, x_test, y_test, num_classes=10, stored_bytes_per_sample=3072)
