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


@functools.cache
def command_flags() -> dict[str, frozenset[str]]:
    """Every `ferret` sub-command's options, from the real parsers; "" holds `ferret`'s own."""
    from analysis.cli import build_parser, discover_commands  # here: collecting the tests builds nothing

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
    """What `cls` (a class of the packages, in any module) and its bases define, instance
    attributes (`self.NAME = ...`) included; None when it is no class of the packages or has a
    base from elsewhere (`nn.Module`, `NamedTuple`), which may define anything."""
    found: set[str] = set()
    todo, seen = [cls], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        definitions = class_definitions(name, root)
        if not definitions and (name == cls or name not in CLOSED_BASES):
            return None
        for node in definitions:
            found.update(*map(defined, node.body), instance_attributes(node))
            todo += [b for b in map(base_name, node.bases) if b not in seen]
    return frozenset(found)


def class_definitions(name: str, root: Path) -> list[ast.ClassDef]:
    """Every `class name` of the packages (only the files that say `class name` are parsed)."""
    nodes = (node for path in class_files(root).get(name, []) for node in ast.walk(parsed(root / path)))
    return [node for node in nodes if isinstance(node, ast.ClassDef) and node.name == name]


@functools.cache
def class_files(root: Path) -> dict[str, list[Path]]:
    """The packages' files that define each class name, by a look at their text."""
    found: dict[str, list[Path]] = {}
    for path, text in sources(root).items():
        for name in re.findall(r"^\s*class (\w+)", text, re.M) if path.parts[0] in PACKAGES else []:
            found.setdefault(name, []).append(path)
    return found


def base_name(base: ast.expr) -> str:
    """`nn.Module` → `Module`, `Generic[T]` → `Generic`."""
    while isinstance(base, ast.Subscript | ast.Attribute | ast.Call):
        if isinstance(base, ast.Attribute):
            return base.attr
        base = base.value if isinstance(base, ast.Subscript) else base.func
    return base.id if isinstance(base, ast.Name) else ""


def instance_attributes(cls: ast.ClassDef) -> Iterator[str]:
    stored = (n for n in ast.walk(cls) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store))
    yield from (n.attr for n in stored if isinstance(n.value, ast.Name) and n.value.id == "self")


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def module_names(path: Path) -> frozenset[str]:
    """The names a module defines or imports at its top level."""
    return frozenset(itertools.chain.from_iterable(map(defined, parsed(path).body)))


def defined(node: ast.stmt) -> Iterator[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    elif isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        yield from (t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name))
    elif isinstance(node, ast.Import | ast.ImportFrom):
        yield from ((alias.asname or alias.name).split(".")[0] for alias in node.names)


# What a checkout may hold beside the repository's own files (.gitignore: builds, run outputs):
# never a name the docs may rely on, or the check would pass in one checkout and fail in another.
GENERATED = ("build", "dist", "out")


@functools.cache
def top_level(root: Path) -> frozenset[str]:
    """The names a path from the repository's top may start with."""
    return frozenset(
        p.name
        for p in root.iterdir()
        if not p.name.startswith(".") and p.name not in GENERATED and not p.name.endswith(".egg-info")
    )


@functools.cache
def file_names(root: Path) -> frozenset[str]:
    """The name of every file in the repository (hidden folders, caches and builds left out)."""
    names: set[str] = set()
    for _, folders, files in os.walk(root):
        folders[:] = [d for d in folders if not d.startswith((".", "__")) and d not in GENERATED]
        names.update(files)
    return frozenset(names)


@functools.cache
def sources(root: Path) -> dict[Path, str]:
    """The text of every .py file of the code folders (and setup.py), by path from `root`."""
    paths = [root / "setup.py", *(p for folder in CODE_FOLDERS for p in (root / folder).rglob("*.py"))]
    return {p.relative_to(root): p.read_text(encoding="utf-8") for p in paths if p.is_file()}


@functools.cache
def code_words(root: Path) -> frozenset[str]:
    """Every word and file name in the repository's code (and pyproject.toml)."""
    toml = root / "pyproject.toml"
    text = "\n".join([*sources(root).values(), toml.read_text(encoding="utf-8") if toml.is_file() else ""])
    return frozenset(w.strip(".-") for w in re.findall(r"[\w.-]+", text)) | frozenset(re.findall(r"\w+", text))
