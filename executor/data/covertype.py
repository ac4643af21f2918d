"""Covertype (UCI forest cover types) from the raw CSV `covtype.data` (or `.gz`, or `covtype.csv`).

Each row: 54 integer features (10 quantitative, 4 wilderness-area and 40 soil-type indicators)
then the cover type 1..7; an optional header line (Kaggle's copy) is skipped. No test split is
shipped, so a stratified one is drawn with `seed` (`test_fraction`). The 10 quantitative columns
are standardised with the training split's mean and standard deviation; indicators stay 0/1.
Shape (54,), 7 classes; a replay slot stores the raw row as 54 int32 = 216 bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from executor.data.base import Dataset
from executor.data.files import find_file, read_bytes, require_root
from executor.data.registry import register_dataset
from executor.data.split import split_train_test
from planner.errors import FerretError

NUM_FEATURES = 54
QUANTITATIVE = 10


def read_covtype(path: Path) -> tuple[np.ndarray, np.ndarray]:
    text = read_bytes(path).decode("ascii", errors="replace")
    first = text.split("\n", 1)[0]
    skip = 1 if first and not first.split(",")[0].strip().lstrip("-").replace(".", "").isdigit() else 0
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, skiprows=skip, ndmin=2)
    except ValueError as exc:
        raise FerretError(f"{path} is not a Covertype CSV: {exc}") from None
    if table.shape[0] == 0 or table.shape[1] != NUM_FEATURES + 1:
        raise FerretError(f"{path}: expected rows of {NUM_FEATURES} features + label, got shape {table.shape}")
    labels = table[:, -1].astype(np.int64)
    if labels.min() < 1 or labels.max() > 7 or not np.array_equal(labels, table[:, -1]):
        raise FerretError(f"{path}: cover types must be integers 1..7")
    return table[:, :NUM_FEATURES].astype(np.float32), labels - 1


@register_dataset("covertype")
def load_covertype(root: Path | None, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    if not 0 < test_fraction < 1:
        raise FerretError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    folder = require_root(root, "covertype", "covtype.data from the UCI repository")
    x, y = read_covtype(find_file(folder, ["covtype.data", "covtype.csv"]))
    x_tr, x_te, y_tr, y_te = split_train_test(x, y, test_fraction, seed, "covertype")
    mean = x_tr[:, :QUANTITATIVE].mean(axis=0)
    std = x_tr[:, :QUANTITATIVE].std(axis=0)
    std[std == 0] = 1.0
    for part in (x_tr, x_te):
        part[:, :QUANTITATIVE] = (part[:, :QUANTITATIVE] - mean) / std
    return Dataset("covertype", x_tr, y_tr, x_te, y_te, num_classes=7, stored_bytes_per_sample=NUM_FEATURES * 4)
