"""`planner.native.fresh`: a build is fresh only while every source it recorded is unchanged,
for a top-level package and a nested one alike (the manifest names sources from the root)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.native import MANIFEST, PURE_ENV, fresh, source_hash


def _package(root: Path, dotted: str) -> Path:
    """A package `dotted` under `root` with one source `mod.py` and a manifest of its build."""
    package_dir = root.joinpath(*dotted.split("."))
    package_dir.mkdir(parents=True)
    source = package_dir / "mod.py"
    source.write_text("x = 1\n")
    relative = f"{dotted.replace('.', '/')}/mod.py"
    (package_dir / MANIFEST).write_text(json.dumps({"sources": {relative: source_hash(source)}}))
    return package_dir


@pytest.mark.parametrize("dotted", ["top", "outer.inner", "a.b.c"])
def test_a_build_is_fresh_until_a_source_changes(tmp_path, monkeypatch, dotted):
    monkeypatch.delenv(PURE_ENV, raising=False)
    package_dir = _package(tmp_path, dotted)
    assert fresh(package_dir, {"mod"}, dotted)
    assert not fresh(package_dir, {"mod", "other"}, dotted)  # an extension the build did not make
    monkeypatch.setenv(PURE_ENV, "1")
    assert not fresh(package_dir, {"mod"}, dotted)
    monkeypatch.delenv(PURE_ENV)
    (package_dir / "mod.py").write_text("x = 2\n")
    assert not fresh(package_dir, {"mod"}, dotted)
