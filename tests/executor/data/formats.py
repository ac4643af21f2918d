"""Writers of small files in the true on-disk formats, for the loader tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """IDX: 0x00 0x00, type 0x08 (ubyte), ndim, big-endian u32 dims, then the bytes."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)


def write_cifar_batch(path: Path, data: np.ndarray, labels: dict[str, list[int]]) -> None:
    """A CIFAR python-version batch: a dict with bytes keys (as the py2 originals load)."""
    obj = {b"batch_label": b"testing batch", b"data": data, b"filenames": [b"x.png"] * len(data)}
    obj.update({k.encode(): v for k, v in labels.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def images_uint8(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
