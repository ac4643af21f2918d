"""The compiled twin (planner.native, setup.py): it is what runs, it gives exactly what the
interpreted source gives, and a build older than its sources never loads."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from planner.native import MANIFEST, PURE_ENV, compiled
from sim.rows import CHANGE, write_change, write_row
from sim.trace import ROW
from tests.sim.native_digests import digest, draw_scenarios
from tests.sim.pure_python import REPO, run_pure

COMPILED_SOURCES = __import__("tomllib").loads((REPO / "pyproject.toml").read_text())["tool"]["ferret"]["compiled"]
HAS_COMPILER = shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) is not None
PURE = os.environ.get(PURE_ENV, "") not in ("", "0")


@pytest.mark.skipif(not HAS_COMPILER or PURE, reason="no C compiler here (or pure Python asked for)")
def test_the_listed_modules_run_compiled():
    # scripts/setup.sh builds them; CI runs the suite on that build.
    import sim.engine  # noqa: F401  (every compiled module is imported by the engine)

    expected = sorted(src[:-3].replace("/", ".") for src in COMPILED_SOURCES)
    assert [m for m in compiled("sim") if not m.endswith("__mypyc")] == expected


def test_compiled_and_interpreted_runs_are_identical(tmp_path):
    # Byte-identical traces and equal results (memory timeline, staleness, update times) on
    # random scenarios of every strategy, contention, jitter, links and memory model.
    drawn = draw_scenarios(40)
    (tmp_path / "scenarios.pickle").write_bytes(pickle.dumps(drawn))
    here = [digest(s) for s in drawn]
    there = json.loads(
        run_pure(f"from tests.sim.native_digests import main; main({str(tmp_path / 'scenarios.pickle')!r})")
    )
    assert there["compiled"] == []
    assert here == there["digests"]
    assert len(set(here)) > 30  # the scenarios differ


def test_rows_and_changes_are_the_struct_layouts():
    from librt.strings import BytesWriter

    fields = [
        (2, 59_999, 3, 1, 15, 0.1 + 0.2, 1e300, 2**40, -7, -(2**62), 2**31 - 1),
        (0, -1, -1, -1, -1, -0.0, 5.5, -1, 0, 0, 0),
    ]
    w = BytesWriter()
    for f in fields:
        write_row(w, *f)
    write_change(w, 0.75, 9, -(2**50))
    assert w.getvalue() == b"".join(ROW.pack(*f) for f in fields) + CHANGE.pack(0.75, 9, -(2**50))


def _copy_package(tmp_path: Path) -> Path:
    """The sim package with its build (if any) and the packages it imports, to edit safely."""
    for package in ("sim", "planner"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _loaded_from(root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    code = "import json, sim.engine, sim.rows; print(json.dumps({m: sys.modules[m].__file__ for m in ('sim.engine', 'sim.rows')}))"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; " + code], cwd=root, capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if k != PURE_ENV}, **(env or {}), "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return {name: Path(path).name for name, path in json.loads(done.stdout).items()}


@pytest.mark.skipif(not (REPO / "sim" / MANIFEST).exists(), reason="no compiled build here")
def test_a_build_older_than_its_sources_never_loads(tmp_path):
    root = _copy_package(tmp_path)
    assert _loaded_from(root)["sim.engine"] != "engine.py"  # the copied build is fresh: it loads
    assert _loaded_from(root, {"FERRET_PURE_PYTHON": "1"}) == {"sim.engine": "engine.py", "sim.rows": "rows.py"}
    # Editing any compiled source — even a module other than the one imported — stales the build.
    with (root / "sim" / "rows.py").open("a") as f:
        f.write("\n# edited after the build\n")
    assert _loaded_from(root) == {"sim.engine": "engine.py", "sim.rows": "rows.py"}
    # No manifest: nothing says which sources the build was made from.
    (root / "sim" / "rows.py").write_text((REPO / "sim" / "rows.py").read_text())
    assert _loaded_from(root)["sim.engine"] != "engine.py"
    (root / "sim" / MANIFEST).unlink()
    assert _loaded_from(root) == {"sim.engine": "engine.py", "sim.rows": "rows.py"}


@pytest.mark.skipif(not (REPO / "sim" / MANIFEST).exists(), reason="no compiled build here")
def test_a_build_for_another_runtime_library_never_loads(tmp_path):
    root = _copy_package(tmp_path)
    manifest = json.loads((root / "sim" / MANIFEST).read_text())
    (root / "sim" / MANIFEST).write_text(json.dumps({**manifest, "librt": "0.0.1"}))
    assert _loaded_from(root) == {"sim.engine": "engine.py", "sim.rows": "rows.py"}


def test_the_package_imports_with_nothing_compiled(tmp_path):
    # What a machine without a C compiler has: sources only.
    root = tmp_path
    for package in ("sim", "planner"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.so", MANIFEST))
    assert _loaded_from(root) == {"sim.engine": "engine.py", "sim.rows": "rows.py"}
