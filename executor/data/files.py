"""Reading a user's local data files: finding them, opening `.gz` transparently, unpickling
safely, and turning every failure into a `FerretError` that names the path."""

from __future__ import annotations

import gzip
import pickle
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from planner.errors import FerretError


def require_root(root: Path | None, dataset: str, expects: str) -> Path:
    if root is None:
        raise FerretError(f"dataset {dataset!r} loads local files: give its folder as root ({expects})")
    if not root.is_dir():
        raise FerretError(f"{dataset} data folder not found: {root}")
    return root


def find_file(root: Path, names: Sequence[str], subdirs: Sequence[str] = ("",)) -> Path:
    """The first of `subdir/name(.gz)` that exists under `root`; else an error listing them."""
    tried: list[Path] = []
    for sub in subdirs:
        for name in names:
            for candidate in (root / sub / name, root / sub / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
                tried.append(candidate)
    shown = ", ".join(str(p) for p in tried[:3]) + (f" (and {len(tried) - 3} other places)" if len(tried) > 3 else "")
    raise FerretError(f"file not found: {shown}")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in `.gz`."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except FileNotFoundError:
        raise FerretError(f"file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise FerretError(f"cannot read {path}: {exc}") from None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file must not run code."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core."):
            module = module.replace("numpy.core.", "numpy._core.", 1)  # numpy 2 moved the module
        return super().find_class(module, name)


def load_array_pickle(data: bytes, path: Path) -> dict[str, Any]:
    """A pickled dict of arrays (CIFAR batches); bytes keys are decoded to str."""
    import io

    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means a corrupt or foreign file
        raise FerretError(f"{path} is not a valid data pickle: {exc}") from None
    if not isinstance(obj, dict):
        raise FerretError(f"{path} is not a valid data pickle: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}
