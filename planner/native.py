"""The guard that keeps a stale compiled build from running, for every package that has one.

`setup.py` builds two kinds of extension modules beside their sources, from the build lists of
pyproject.toml's `[tool.ferret]`: the twin's modules compiled with mypyc from their own `.py`
(`compiled`; docs/sim.md §6), and plain C kernels of the planner (`kernels`, e.g.
`planner/_s3_kernel.c`, which has no `.py`: its module falls back to numpy code when the
import fails; docs/planner.md §8). CPython imports an extension before a `.py` of the same
name, so the build also writes a manifest (`_native.json` in each package it compiled into)
with a hash of every source it compiled there and, for mypyc's modules, of `librt.strings`
(mypyc's runtime library, whose C interface the compiled code uses). `guard` — called by the
package's `__init__` before any of its modules is imported — checks it: if any source of the
build no longer matches its hash (someone edited it after building), if another `librt` is
installed, if the manifest is missing, or if `FERRET_PURE_PYTHON` is set (to `1`), no extension
module of the package loads: one with a `.py` is imported from it, one without fails to import
(ImportError). The compiled modules of one build call each other natively, so one stale source
means none of the package's may run. A stale build never runs; `bash scripts/setup.sh`
rebuilds it.

`compiled(package)`: the package's modules that were loaded from a compiled build.

Standard library only: setup.py loads this file on its own, before the package can import.
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


def write_manifest(package_dir: Path, root: Path, sources: Sequence[str], librt: str | None, mypyc: bool) -> None:
    """Record the hash of every compiled source (paths relative to `root`) and, for a mypyc
    build, the `librt` built against."""
    hashes = {src: source_hash(root / src) for src in sources}
    manifest: dict[str, object] = {"sources": hashes}
    if mypyc:
        manifest["librt"] = librt
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


def fresh(package_dir: Path, modules: set[str], package: str) -> bool:
    """The compiled `modules` of `package` (dotted, at `package_dir`) are all of one build that
    matches its sources (and pure Python is not asked for). The manifest names sources from the
    project's root, `package`'s path above `package_dir` (a nested package's too)."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return False
    try:
        manifest = json.loads((package_dir / MANIFEST).read_text())
        recorded = manifest["sources"]
        built = {src.rpartition(".")[0] for src in recorded}  # module paths, without .py / .c
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    if "librt" in manifest and manifest["librt"] != runtime_id():
        return False  # built against another runtime library
    prefix = package.replace(".", "/")
    if any(f"{prefix}/{name}" not in built for name in modules):
        return False  # an extension the last build did not make
    root = package_dir.parents[package.count(".")]
    try:
        return all(source_hash(root / src) == digest for src, digest in recorded.items())
    except OSError:  # a compiled source was removed
        return False


class _SourceFinder:
    """Imports the named modules of one package from their `.py`, never from the extension beside
    it; a module without a `.py` (a C kernel, or a build whose source is gone) fails to import."""

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
        if not source.exists():  # only the extension is there, and it must not load
            raise ImportError(f"{fullname}: its build is stale or pure Python is asked for ({PURE_ENV})")
        return importlib.util.spec_from_file_location(fullname, source)


def guard(package: str, package_file: str) -> None:
    """Call from `package`'s `__init__` before it imports anything: unless its compiled build is
    fresh, its compiled modules are imported from their sources."""
    package_dir = Path(package_file).resolve().parent
    # The group library (`*__mypyc`) is only loaded by the modules' own extensions.
    names = {name for name in _extension_modules(package_dir) if not name.endswith("__mypyc")}
    if not names or fresh(package_dir, names, package):
        return
    sys.meta_path.insert(0, _SourceFinder(package, package_dir, names))


def compiled(package: str) -> list[str]:
    """The package's loaded modules that run compiled (their module file is an extension)."""
    loaded: list[tuple[str, ModuleType]] = [(n, m) for n, m in list(sys.modules.items()) if n.startswith(package + ".")]
    return sorted(n for n, m in loaded if str(getattr(m, "__file__", "") or "").endswith(_EXTENSIONS))
