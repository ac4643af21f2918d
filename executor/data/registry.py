"""Registry of data sets: `load_dataset("digits")`, `load_dataset("mnist", root="~/data/mnist")`.

A loader takes `(root: Path | None, seed: int, **options)` and returns a `Dataset`; loaders of
real data sets read local files only (nothing downloads) and raise `FerretError` naming the
path when a file is missing or corrupt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from executor.data.base import Dataset
from executor.data.options import checked_options
from planner.registry import Registry

DatasetLoader = Callable[..., Dataset]
DATASETS: Registry[DatasetLoader] = Registry("dataset")
register_dataset = DATASETS.register


def load_dataset(name: str, root: str | Path | None = None, seed: int = 0, **options: Any) -> Dataset:
    _load_builtin_datasets()
    loader = DATASETS[name]
    checked = checked_options("dataset", name, loader, 2, options)  # after (root, seed)
    return loader(None if root is None else Path(root).expanduser(), seed, **checked)


def _load_builtin_datasets() -> None:
    import executor.data.catalog  # noqa: F401
