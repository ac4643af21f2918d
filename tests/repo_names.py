"""What the repository has, for tests/test_docs_truth.py to hold the docs' names to.

`ferret`'s commands and their flags (the real parsers), a script's flags, a module's top-level
names, the packages' classes and their members, every file name and every word of the code.
Read with `ast` and the file system, except the parsers, which `analysis.cli` builds. Each is
computed once per repository root.
"""

from __future__ import annotations

import argparse
import ast
import functools
import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("planner", "sim", "executor", "analysis")
CODE_FOLDERS = (*PACKAGES, "benchmarks", "scripts", "tests")
FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*[*…]?")
# Bases that give a class no member a doc would name.
CLOSED_BASES = frozenset({"object", "ABC", "Protocol", "Generic"})
ClassIndex = dict[str, list[tuple[frozenset[str], tuple[str, ...]]]]


@functools.cache
def command_flags() -> dict[str, frozenset[str]]:
    """Every `ferret` sub-command's options, from the real parsers; "" holds `ferret`'s own."""
    from analysis.cli import build_parser, discover_commands

    parser = build_parser(discover_commands())
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {name: frozenset(cmd.populated()._option_string_actions) for name, cmd in sub.choices.items()}
    flags[""] = frozenset(parser._option_string_actions)
    return flags


@functools.cache
def script_flags(path: Path) -> frozenset[str]:
    """The `--flag` strings in a script and in the benchmark modules it imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and FLAG.fullmatch(node.value.split("=")[0]):
            found.add(node.value.split("=")[0])
        imported = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        imported += [alias.name for alias in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
        for module in imported:
            local = path.parent / f"{module.removeprefix('benchmarks.')}.py"
            if local != path and local.is_file():
                found |= script_flags(local)
    return frozenset(found)


@functools.cache
def every_flag(root: Path) -> frozenset[str]:
    """The flags of every `ferret` command and of every script in benchmarks/ and scripts/."""
    scripts = [*(root / "benchmarks").glob("*.py"), *(root / "scripts").glob("*.py")]
    return frozenset().union(*command_flags().values(), *map(script_flags, scripts))


def class_members(cls: str, root: Path) -> frozenset[str] | None:
    """What `cls` (a class of the packages, in any module) and its bases define; None when it is
    no class of the packages or has a base from elsewhere (`nn.Module`, `NamedTuple`)."""
    found: set[str] = set()
    todo, seen = [cls], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        if name not in classes(root):
            if name == cls or name not in CLOSED_BASES:
                return None
            continue
        for own, bases in classes(root)[name]:
            found |= own
            todo += [b for b in bases if b not in seen]
    return frozenset(found)


@functools.cache
def classes(root: Path) -> ClassIndex:
    """Every class the packages define, by name: its own members (and instance attributes) and its
    bases' names."""
    found: ClassIndex = {}
    for path in (p for package in PACKAGES for p in (root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                own = frozenset(itertools.chain(*map(defined, node.body), instance_attributes(node)))
                bases = tuple(ast.unparse(b).split("[")[0].rpartition(".")[2] for b in node.bases)
                found.setdefault(node.name, []).append((own, bases))
    return found


def instance_attributes(cls: ast.ClassDef) -> Iterator[str]:
    """The `self.NAME = ...` of a class's methods."""
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and ast.unparse(node.value) == "self":
            yield node.attr


@functools.cache
def module_names(path: Path) -> frozenset[str]:
    """The names a module defines or imports at its top level."""
    return frozenset(itertools.chain.from_iterable(map(defined, ast.parse(path.read_text(encoding="utf-8")).body)))


def defined(node: ast.stmt) -> Iterator[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    elif isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        yield from (t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name))
    elif isinstance(node, ast.Import | ast.ImportFrom):
        yield from ((alias.asname or alias.name).split(".")[0] for alias in node.names)


@functools.cache
def file_names(root: Path) -> frozenset[str]:
    """The name of every file in the repository (hidden folders, caches and builds left out)."""
    names: set[str] = set()
    for _, folders, files in os.walk(root):
        folders[:] = [d for d in folders if not d.startswith((".", "__")) and d not in ("build", "out")]
        names.update(files)
    return frozenset(names)


@functools.cache
def code_words(root: Path) -> frozenset[str]:
    """Every word and file name in the repository's code (and pyproject.toml, setup.py)."""
    sources = [root / "pyproject.toml", root / "setup.py"]
    sources += [p for folder in CODE_FOLDERS for p in (root / folder).rglob("*.py")]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources if p.is_file())
    return frozenset(w.strip(".-") for w in re.findall(r"[\w.-]+", text)) | frozenset(re.findall(r"\w+", text))
