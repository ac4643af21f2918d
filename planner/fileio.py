"""File output that is never half-written, and JSON input with errors that name the file.

Every layer writes through these helpers, so they live at the bottom of the import chain.
Outputs of a whole command go through `atomic_dir` (a folder) or `atomic_files` (a file and
its siblings); planner/output_safety.py holds the rules they share (what may be replaced,
the lock, stale staging folders).
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
from planner.output_safety import (
    check_file_output,
    check_replaceable,
    made_parents,
    output_lock,
    record_outputs,
    remove_stale,
    replace_folder,
    staging_dir,
    umask,
    writing,
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the result the mode a plain open() would have.
        tmp.chmod(0o666 & ~umask())
        with writing(target):
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
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise FerretError(f"{what} {p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, a 5000-digit integer, nesting too deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise FerretError(f"{what} {p} is not valid JSON ({reason})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"JSON has no {name}; write a finite number or null")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces `path` as a whole.

    `path` must be absent, an empty folder or a folder ferret wrote (planner/output_safety.py);
    afterwards it holds exactly what the block wrote: nothing of an earlier run stays beside it,
    and on failure (or a signal) `path` is as it was, byte for byte. While the block runs, the
    output is locked: a second writer of `path` fails at once with one line. Staging folders a
    killed writer left beside `path` are removed first.
    """
    target = Path(path)
    check_replaceable(target)
    with _staged(target) as staging:
        yield staging
        check_replaceable(target)
        record_outputs(staging)
        replace_folder(staging, target)


@contextlib.contextmanager
def atomic_files(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A single-file output and its siblings (`p.json`, `p.summary.json`, ...): yield a staging
    folder; on success each file written there is renamed beside `path` (each rename atomic),
    on failure nothing reaches the folder. Locked like `atomic_dir`."""
    target = Path(path)
    check_file_output(target)
    with _staged(target) as staging:
        yield staging
        mode = 0o666 & ~umask()
        for item in sorted(staging.iterdir()):
            item.chmod(mode)
            os.replace(item, target.parent / item.name)


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A fresh staging folder beside `target`, with its parents made and its lock held, after
    removing what killed writers left; the folder is gone afterwards, whatever happened."""
    with made_parents(target), output_lock(target):
        remove_stale(target)
        staging = staging_dir(target)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)
