"""Build hook: compile the modules that pyproject.toml's `[tool.ferret] compiled` lists with mypyc.

Everything else about the package is in pyproject.toml. The compiled modules come from the same
`.py` files (no second copy of the code; docs/sim.md §6) and land beside them as extension
modules, with a manifest of their sources' hashes that `sim.native.guard` checks at import, so
an edited source never runs from a stale build. When mypyc or a C compiler is missing or fails,
the install still succeeds and the package runs in pure Python (the build says why).
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
COMPILED: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ferret"]["compiled"]
GROUP = "sim._native"  # the one shared library of the compiled modules: sim/_native__mypyc.*.so


def _native_module():
    """`sim/native.py` on its own (the package itself needs numpy, which a build may not have)."""
    spec = importlib.util.spec_from_file_location("_ferret_native", ROOT / "sim" / "native.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiled_extensions() -> list[Extension]:
    """mypyc's extensions of `COMPILED` (it type-checks them and writes their C), or none if it cannot."""
    try:
        from mypyc.build import mypycify

        return mypycify(COMPILED, opt_level="3", group_name=GROUP)
    except (Exception, SystemExit) as exc:  # mypy missing, or the sources do not type-check
        print(f"ferret: not compiling ({type(exc).__name__}: {exc}); pure Python runs", file=sys.stderr)
        return []


class CompileOrPurePython(build_ext):
    """Build the extensions, then record their sources' hashes; if the C build fails, warn and leave
    the pure-Python package (with no manifest, no compiled module that might be left loads)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no C compiler, or it failed
            print(f"ferret: not compiling ({type(exc).__name__}: {exc}); pure Python runs", file=sys.stderr)
            return
        native = _native_module()
        librt = native.runtime_id()  # the build's: the set-up script builds in the environment it runs
        for package_dir in {Path(self.get_ext_fullpath(src[:-3].replace("/", "."))).parent for src in COMPILED}:
            native.write_manifest(package_dir, ROOT, COMPILED, librt)


# mypyc's code generation takes a while: only for commands that build (not for pip's metadata hooks).
building = any(command in sys.argv for command in ("build", "build_ext", "bdist_wheel", "editable_wheel", "develop"))
setup(ext_modules=compiled_extensions() if building else [], cmdclass={"build_ext": CompileOrPurePython})
