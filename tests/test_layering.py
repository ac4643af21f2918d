"""The import direction `planner ← sim ← executor ← analysis`, checked on every module's source.

Rules (DESIGN.md): a package imports only packages to its left; only `executor` imports torch
(torchvision too); nothing outside `analysis` imports `analysis`. Imports are read with `ast`,
so a lazy import inside a function counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("planner", "sim", "executor", "analysis")
TORCH = ("torch", "torchvision")


def imported_roots(path: Path) -> set[str]:
    """Top-level package of every absolute import in the file."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def violations(package: str) -> list[str]:
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        roots = imported_roots(path)
        for root in sorted(roots & set(LAYERS) - allowed):
            found.append(f"{path.relative_to(REPO)} imports {root}")
        if package != "executor":
            for root in sorted(roots & set(TORCH)):
                found.append(f"{path.relative_to(REPO)} imports {root} (only executor may)")
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_imports_go_one_way(package):
    assert violations(package) == []


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from executor.models import build_model\n    import torch.nn\n", encoding="utf-8")
    assert imported_roots(bad) == {"executor", "torch"}


def test_every_package_is_checked():
    for package in LAYERS:
        assert any((REPO / package).rglob("*.py")), package
