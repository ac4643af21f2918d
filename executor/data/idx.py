"""MNIST-family loaders from IDX files: `mnist`, `fashion-mnist`, `emnist`.

Files (optionally `.gz`) in `root`, `root/raw` or torchvision's `root/<Name>/raw`:
`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte`; EMNIST names them `emnist-<split>-train-images-idx3-ubyte` etc. and
stores each image transposed (column-major), which is undone here. Pixels are scaled to [0, 1],
shape (1, 28, 28); a replay slot stores 784 bytes (uint8).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from executor.data.base import Dataset
from executor.data.files import find_file, read_bytes, require_root
from executor.data.registry import register_dataset
from planner.errors import FerretError

_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
EMNIST_CLASSES = {"balanced": 47, "byclass": 62, "bymerge": 47, "digits": 10, "letters": 26, "mnist": 10}


def parse_idx(data: bytes, path: Path) -> np.ndarray:
    """Decode an IDX buffer: magic `00 00 <type> <ndim>`, big-endian u32 dims, then the data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise FerretError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FerretError(f"{path}: IDX header is truncated")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - header != expected:
        raise FerretError(f"{path}: IDX payload has {len(data) - header} bytes, the header promises {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_bytes(path), path)


def _split(root: Path, prefix: str, split: str, subdirs: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    images_path = find_file(root, [f"{prefix}{split}-images-idx3-ubyte"], subdirs)
    labels_path = find_file(root, [f"{prefix}{split}-labels-idx1-ubyte"], subdirs)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise FerretError(f"{images_path}: expected a 3-D image array, got {images.ndim}-D")
    if labels.ndim != 1 or len(labels) != len(images):
        raise FerretError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
    return images, labels.astype(np.int64)


def load_idx_dataset(
    name: str,
    root: Path,
    prefix: str,
    subdirs: tuple[str, ...],
    num_classes: int,
    *,
    test_split: str = "t10k",
    transpose: bool = False,
    label_offset: int = 0,
) -> Dataset:
    arrays = []
    for split in ("train", test_split):
        images, labels = _split(root, prefix, split, subdirs)
        if transpose:
            images = images.transpose(0, 2, 1)
        labels = labels - label_offset
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise FerretError(f"{name} {split} labels in {root} fall outside [0, {num_classes})")
        x = (images.astype(np.float32) / 255.0)[:, None]
        arrays += [np.ascontiguousarray(x), labels]
    x_train, y_train, x_test, y_test = arrays
    height, width = x_train.shape[-2:]
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes, stored_bytes_per_sample=height * width)


@register_dataset("mnist")
def load_mnist(root: Path | None, seed: int = 0) -> Dataset:
    folder = require_root(root, "mnist", "IDX files train-images-idx3-ubyte, …")
    return load_idx_dataset("mnist", folder, "", ("", "raw", "MNIST/raw"), 10)


@register_dataset("fashion-mnist")
def load_fashion_mnist(root: Path | None, seed: int = 0) -> Dataset:
    folder = require_root(root, "fashion-mnist", "IDX files train-images-idx3-ubyte, …")
    return load_idx_dataset("fashion-mnist", folder, "", ("", "raw", "FashionMNIST/raw"), 10)


@register_dataset("emnist")
def load_emnist(root: Path | None, seed: int = 0, split: str = "balanced") -> Dataset:
    if split not in EMNIST_CLASSES:
        raise FerretError(f"emnist split must be one of {', '.join(EMNIST_CLASSES)}, got {split!r}")
    folder = require_root(root, "emnist", f"IDX files emnist-{split}-train-images-idx3-ubyte, …")
    subdirs = ("", "gzip", "raw", "EMNIST/raw")
    offset = 1 if split == "letters" else 0  # letters are labelled 1..26
    return load_idx_dataset(
        f"emnist-{split}",
        folder,
        f"emnist-{split}-",
        subdirs,
        EMNIST_CLASSES[split],
        test_split="test",
        transpose=True,
        label_offset=offset,
    )
