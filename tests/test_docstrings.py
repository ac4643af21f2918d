"""Every module and every public module-level class in the four packages opens with a docstring.

The project's guide asks that a reader can start at any module or public class and read its
contract first. A module counts even when it only re-exports (a package `__init__` says what the
package is); only a file with no statements at all is exempt. A class is public when its name
does not start with `_`. Read with `ast`, so nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("planner", "sim", "executor", "analysis")


def missing_docstrings(path: Path, root: Path = REPO) -> list[str]:
    """`file:line:name` for the module (line 1, name `<module>`) and each public class without one."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(root)
    found = []
    if tree.body and ast.get_docstring(tree) is None:
        found.append(f"{where}:1:<module>")
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and ast.get_docstring(node) is None:
            found.append(f"{where}:{node.lineno}:{node.name}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_and_public_class_has_a_docstring(package):
    missing = [m for path in sorted((REPO / package).rglob("*.py")) for m in missing_docstrings(path)]
    assert missing == [], f"{len(missing)} without a docstring:\n" + "\n".join(missing)


def test_the_checker_sees_what_is_missing(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text(
        'import os\n\n\nclass Public:\n    x = 1\n\n\nclass _Private:\n    pass\n\n\nclass Told:\n    """Yes."""\n',
        encoding="utf-8",
    )
    assert missing_docstrings(bad, tmp_path) == ["m.py:1:<module>", "m.py:4:Public"]
    empty = tmp_path / "__init__.py"
    empty.write_text("", encoding="utf-8")
    assert missing_docstrings(empty, tmp_path) == []
