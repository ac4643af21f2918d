"""SVHN .mat and Covertype CSV loaders round-trip files written by the test."""

import gzip

import numpy as np
import pytest
import scipy.io

from executor.data import load_dataset
from planner.errors import FerretError


def write_svhn(path, rng, n):
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
    scipy.io.savemat(path, {"X": x, "y": y})
    return x, y


def test_svhn_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = write_svhn(tmp_path / "train_32x32.mat", rng, 9)
    write_svhn(tmp_path / "test_32x32.mat", rng, 4)
    ds = load_dataset("svhn", root=tmp_path)
    assert ds.input_shape == (3, 32, 32) and len(ds) == 9 and len(ds.y_test) == 4
    # X is H×W×C×N; sample 5's green channel at row 3, column 7.
    assert ds.x_train[5, 1, 3, 7] == pytest.approx(x[3, 7, 1, 5] / 255)
    assert ds.y_train.tolist() == [int(v) % 10 for v in y[:, 0]]  # label 10 is digit 0
    write_svhn(tmp_path / "extra_32x32.mat", rng, 2)
    assert len(load_dataset("svhn", root=tmp_path, extra=True)) == 11


def test_svhn_missing_and_corrupt(tmp_path):
    with pytest.raises(FerretError, match=f"file not found: {tmp_path / 'train_32x32.mat'}"):
        load_dataset("svhn", root=tmp_path)
    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage" * 3)
    with pytest.raises(FerretError, match=f"cannot read {tmp_path / 'train_32x32.mat'}"):
        load_dataset("svhn", root=tmp_path)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((8, 8, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(FerretError, match="expected X of shape 32×32×3×N"):
        load_dataset("svhn", root=tmp_path)


def covtype_rows(rng, n):
    """Rows whose (wilderness, soil) pair is unique, so a loaded row can be traced to its line."""
    assert n <= 160
    quantitative = rng.integers(0, 4000, size=(n, 10))
    wilderness = np.eye(4, dtype=int)[np.arange(n) // 40]
    soil = np.eye(40, dtype=int)[np.arange(n) % 40]
    labels = np.tile(np.arange(1, 8), n // 7 + 1)[:n]
    return np.column_stack([quantitative, wilderness, soil, labels])


def test_covertype_round_trip(tmp_path):
    rows = covtype_rows(np.random.default_rng(0), 70)
    text = "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"
    (tmp_path / "covtype.data.gz").write_bytes(gzip.compress(text.encode()))
    ds = load_dataset("covertype", root=tmp_path, seed=3)
    assert ds.input_shape == (54,) and ds.num_classes == 7
    assert len(ds) == 56 and len(ds.y_test) == 14
    assert sorted(np.unique(ds.y_test).tolist()) == list(range(7))  # stratified
    # Trace every loaded row to its line by its indicator columns (kept as 0/1).
    line_of = {tuple(r[10:54]): i for i, r in enumerate(rows)}
    train_lines = [line_of[tuple(int(v) for v in x[10:])] for x in ds.x_train]
    test_lines = [line_of[tuple(int(v) for v in x[10:])] for x in ds.x_test]
    assert sorted(train_lines + test_lines) == list(range(70))
    assert ds.y_train.tolist() == [rows[i, 54] - 1 for i in train_lines]
    assert ds.y_test.tolist() == [rows[i, 54] - 1 for i in test_lines]
    # Quantitative columns standardised with the training split's statistics.
    raw = rows[train_lines, :10].astype(np.float64)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    np.testing.assert_allclose(ds.x_train[:, :10], (raw - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_test[:, :10], (rows[test_lines, :10] - mean) / std, rtol=1e-5, atol=1e-5)
    # Same seed → same split; a Kaggle-style header is skipped.
    header = ",".join([f"c{i}" for i in range(54)] + ["Cover_Type"])
    (tmp_path / "kaggle").mkdir()
    (tmp_path / "kaggle" / "covtype.csv").write_text(header + "\n" + text)
    again = load_dataset("covertype", root=tmp_path / "kaggle", seed=3)
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_covertype_bad_files(tmp_path):
    rows = covtype_rows(np.random.default_rng(1), 14)
    path = tmp_path / "covtype.data"
    path.write_text("\n".join(",".join(str(v) for v in row[:-3]) for row in rows))
    with pytest.raises(FerretError, match=f"{path}: expected rows of 54 features"):
        load_dataset("covertype", root=tmp_path)
    rows[3, -1] = 9
    path.write_text("\n".join(",".join(str(v) for v in row) for row in rows))
    with pytest.raises(FerretError, match=f"{path}: cover types must be integers 1..7"):
        load_dataset("covertype", root=tmp_path)
    path.write_text("1,2,three\n")
    with pytest.raises(FerretError, match=f"{path} is not a Covertype CSV"):
        load_dataset("covertype", root=tmp_path)
    path.unlink()
    with pytest.raises(FerretError, match="file not found"):
        load_dataset("covertype", root=tmp_path)
