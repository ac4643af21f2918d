"""Build hook: compile the modules that pyproject.toml's `[tool.ferret]` lists.

`compiled`: the twin's modules, compiled with mypyc from the same `.py` files (no second copy of
the code; docs/sim.md §6). `kernels`: plain C extensions (the planner's S3 lock-step,
docs/planner.md §8), compiled without fast-math and without FMA contraction so that they give
the bits of the numpy code they stand in for. Both land beside their sources as extension
modules, with a manifest of their sources' hashes that `planner.native.guard` checks at import,
so an edited source never runs from a stale build. When mypyc or a C compiler is missing or
fails, the install still succeeds and the package runs in pure Python (the build says why).
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
BUILD = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ferret"]
COMPILED: list[str] = BUILD["compiled"]
KERNELS: list[str] = BUILD["kernels"]
GROUP = "sim._native"  # the one shared library of the mypyc modules: sim/_native__mypyc.*.so
EXACT_FLOATS = ["-O2", "-fno-fast-math", "-ffp-contract=off"]  # the kernels' bits are numpy's


def _native_module():
    """`planner/native.py` on its own (the package itself needs numpy, which a build may not have)."""
    spec = importlib.util.spec_from_file_location("_ferret_native", ROOT / "planner" / "native.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mypyc_extensions() -> list[Extension]:
    """mypyc's extensions of `COMPILED` (it type-checks them and writes their C), or none if it cannot."""
    try:
        from mypyc.build import mypycify

        return mypycify(COMPILED, opt_level="3", group_name=GROUP)
    except (Exception, SystemExit) as exc:  # mypy missing, or the sources do not type-check
        print(f"ferret: not compiling with mypyc ({type(exc).__name__}: {exc}); the twin runs pure", file=sys.stderr)
        return []


def kernel_extensions() -> list[Extension]:
    return [Extension(src[:-2].replace("/", "."), [src], extra_compile_args=EXACT_FLOATS) for src in KERNELS]


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
        built = {ext.name for ext in self.extensions}
        per_package: dict[Path, list[str]] = defaultdict(list)
        for src in COMPILED + KERNELS:
            name = src.rpartition(".")[0].replace("/", ".")
            if name in built:
                per_package[Path(self.get_ext_fullpath(name)).parent].append(src)
        for package_dir, sources in per_package.items():
            mypyc = any(src.endswith(".py") for src in sources)
            native.write_manifest(package_dir, ROOT, sources, librt, mypyc)


# mypyc's code generation takes a while: only for commands that build (not for pip's metadata hooks).
building = any(command in sys.argv for command in ("build", "build_ext", "bdist_wheel", "editable_wheel", "develop"))
setup(
    ext_modules=mypyc_extensions() + kernel_extensions() if building else [],
    cmdclass={"build_ext": CompileOrPurePython},
)
