"""CIFAR-10/100 from the python-version pickles (`cifar-10-python.tar.gz` as distributed).

`root` may be the extracted folder (`data_batch_1..5` + `test_batch`, or `train` + `test` for
CIFAR-100), its parent (`root/cifar-10-batches-py`, `root/cifar-100-python`), or hold the
unextracted tarball. Each pickle is a dict with `data` (N × 3072 uint8, channel-major) and
`labels` (CIFAR-10) or `fine_labels`/`coarse_labels` (CIFAR-100). Unpickling allows numpy
arrays and plain containers only. Pixels are scaled to [0, 1], shape (3, 32, 32); a replay
slot stores 3,072 bytes.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from executor.data.base import Dataset
from executor.data.files import load_array_pickle, read_bytes, require_root
from executor.data.registry import register_dataset
from planner.errors import FerretError


def _read_members(root: Path, folder: str, tarball: str, names: list[str]) -> list[tuple[bytes, Path]]:
    """The batch files' bytes, from the folder (or `root/folder`) or from inside the tarball."""
    for base in (root, root / folder):
        if (base / names[0]).is_file():
            return [(read_bytes(base / name), base / name) for name in names]
    archive = root / tarball
    if not archive.is_file():
        raise FerretError(f"CIFAR files not found: neither {root / names[0]}, {root / folder / names[0]} nor {archive}")
    out = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for name in names:
                extracted = tar.extractfile(members[name]) if name in members else None
                if extracted is None:
                    raise FerretError(f"{archive} has no member {folder}/{name}")
                out.append((extracted.read(), archive / folder / name))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FerretError(f"cannot read {archive}: {exc}") from None
    return out


def _read_batches(files: list[tuple[bytes, Path]], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for data, path in files:
        batch = load_array_pickle(data, path)
        if "data" not in batch or label_key not in batch:
            raise FerretError(f"{path} lacks the 'data' or '{label_key}' entry of a CIFAR batch")
        x = np.asarray(batch["data"])
        y = np.asarray(batch[label_key], dtype=np.int64)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
            raise FerretError(f"{path}: expected N×3072 uint8 data and N labels, got {x.shape} {x.dtype}, {len(y)}")
        xs.append(x)
        ys.append(y)
    x = np.concatenate(xs).reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return x, np.concatenate(ys)


def _dataset(name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], k: int) -> Dataset:
    for split, (_, y) in (("train", train), ("test", test)):
        if len(y) and (y.min() < 0 or y.max() >= k):
            raise FerretError(f"{name} {split} labels fall outside [0, {k})")
    return Dataset(name, train[0], train[1], test[0], test[1], num_classes=k, stored_bytes_per_sample=3072)


@register_dataset("cifar10")
def load_cifar10(root: Path | None, seed: int = 0) -> Dataset:
    folder = require_root(root, "cifar10", "cifar-10-batches-py or cifar-10-python.tar.gz")
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    files = _read_members(folder, "cifar-10-batches-py", "cifar-10-python.tar.gz", names)
    train, test = _read_batches(files[:5], "labels"), _read_batches(files[5:], "labels")
    return _dataset("cifar10", train, test, 10)


@register_dataset("cifar100")
def load_cifar100(root: Path | None, seed: int = 0, labels: str = "fine") -> Dataset:
    if labels not in ("fine", "coarse"):
        raise FerretError(f"cifar100 labels must be 'fine' (100 classes) or 'coarse' (20), got {labels!r}")
    folder = require_root(root, "cifar100", "cifar-100-python or cifar-100-python.tar.gz")
    files = _read_members(folder, "cifar-100-python", "cifar-100-python.tar.gz", ["train", "test"])
    key = f"{labels}_labels"
    train, test = _read_batches(files[:1], key), _read_batches(files[1:], key)
    return _dataset("cifar100" if labels == "fine" else "cifar100-coarse", train, test, 100 if labels == "fine" else 20)
