"""Which of the twin's modules run compiled, and the guard that keeps a stale build from running.

`setup.py` compiles the modules `[tool.ferret] compiled` lists in pyproject.toml with mypyc,
from the same `.py` files (docs/sim.md §6), into extension modules beside them — which CPython
imports before a `.py` of the same name. So the build also writes a manifest (`_native.json` in
each package it compiled into) with a hash of every compiled source and of `librt.strings`
(mypyc's runtime library, whose C interface the compiled code uses), and `guard` — called by
the package's `__init__` before any of its modules is imported — checks it: if any source of
the build no longer matches its hash (someone edited a `.py` after building), if another
`librt` is installed, if the manifest is missing, or if `FERRET_PURE_PYTHON` is set (to `1`),
every compiled module of the package is imported from its `.py` instead. The compiled modules of one build call each other natively, so
one stale source means none of them may run. A stale build never runs; `bash scripts/setup.sh`
rebuilds it.

`compiled(package)`: the package's modules that were loaded from a compiled build.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

MANIFEST = "_native.json"
PURE_ENV = "FERRET_PURE_PYTHON"
_EXTENSIONS = tuple(sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True))  # longest first


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def runtime_id() -> str | None:
    """A hash of the installed `librt.strings` extension (the compiled code's runtime library), or
    None. (A file hash, not the package version: `importlib.metadata` alone takes longer to import
    than the rest of this check.)"""
    try:
        spec = importlib.util.find_spec("librt.strings")
    except ImportError:
        return None
    return source_hash(Path(spec.origin)) if spec is not None and spec.origin else None


def write_manifest(package_dir: Path, root: Path, sources: Sequence[str], librt: str | None) -> None:
    """Record the hash of every compiled source (paths relative to `root`) and the `librt` built against."""
    hashes = {src: source_hash(root / src) for src in sources}
    manifest = {"sources": hashes, "librt": librt}
    (package_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _extension_modules(package_dir: Path) -> dict[str, Path]:
    """Module name (within the package) → its compiled file, for every extension module beside the sources."""
    found = {}
    for path in package_dir.iterdir():
        for suffix in _EXTENSIONS:
            if path.name.endswith(suffix):
                found[path.name[: -len(suffix)]] = path
                break
    return found


def fresh(package_dir: Path, modules: set[str]) -> bool:
    """The package's compiled `modules` are all of one build that matches its sources (and pure
    Python is not asked for)."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return False
    try:
        manifest = json.loads((package_dir / MANIFEST).read_text())
        recorded, librt = manifest["sources"], manifest["librt"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if librt != runtime_id():
        return False  # built against another runtime library
    if any(f"{package_dir.name}/{name}.py" not in recorded for name in modules):
        return False  # an extension the last build did not make
    root = package_dir.parent
    try:
        return all(source_hash(root / src) == digest for src, digest in recorded.items())
    except OSError:  # a compiled source was removed
        return False


class _SourceFinder:
    """Imports the named modules of one package from their `.py`, never from the extension beside it."""

    def __init__(self, package: str, package_dir: Path, names: set[str]) -> None:
        self.package = package
        self.package_dir = package_dir
        self.names = names

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != self.package or name not in self.names:
            return None
        source = self.package_dir / f"{name}.py"
        if not source.exists():  # only a stale extension is left: it must not load
            raise ImportError(f"{fullname}: compiled module without its source; rebuild (bash scripts/setup.sh)")
        return importlib.util.spec_from_file_location(fullname, source)


def guard(package: str, package_file: str) -> None:
    """Call from `package`'s `__init__` before it imports anything: unless its compiled build is
    fresh, its compiled modules are imported from their sources."""
    package_dir = Path(package_file).resolve().parent
    # The group library (`*__mypyc`) is only loaded by the modules' own extensions.
    names = {name for name in _extension_modules(package_dir) if not name.endswith("__mypyc")}
    if not names or fresh(package_dir, names):
        return
    sys.meta_path.insert(0, _SourceFinder(package, package_dir, names))


def compiled(package: str) -> list[str]:
    """The package's loaded modules that run compiled (their module file is an extension)."""
    loaded: list[tuple[str, ModuleType]] = [(n, m) for n, m in list(sys.modules.items()) if n.startswith(package + ".")]
    return sorted(n for n, m in loaded if str(getattr(m, "__file__", "") or "").endswith(_EXTENSIONS))
