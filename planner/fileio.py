"""File output that is never half-written, and JSON input with errors that name the file.

Every layer writes through these helpers, so they live at the bottom of the import chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from planner.errors import FerretError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the result the mode a plain open() would have.
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Parse a JSON file; a missing or malformed file raises `FerretError` naming the path."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FerretError(f"{what} not found: {p}") from None
    except IsADirectoryError:
        raise FerretError(f"{what} is a directory, expected a JSON file: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FerretError(f"cannot read {what} {p}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FerretError(f"{what} {p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a staging folder; on success move each file in it into `path` (created if absent).

    Each file lands by rename, so a reader never sees a half-written file, and on failure
    nothing at all reaches `path`. Files already in `path` that the block did not write stay.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise FerretError(f"output path exists and is not a folder: {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield staging
        target.mkdir(exist_ok=True)
        file_mode, dir_mode = 0o666 & ~_umask(), 0o777 & ~_umask()
        for item in sorted(staging.rglob("*")):
            dest = target / item.relative_to(staging)
            if item.is_dir():
                dest.mkdir(exist_ok=True)
                dest.chmod(dir_mode)
            else:
                item.chmod(file_mode)
                os.replace(item, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
