"""The rules every output of ferret follows, used by `planner.fileio.atomic_dir/atomic_files`.

- **What may be replaced.** An output folder is replaced as a whole, so it must be absent,
  empty, or a folder ferret wrote: its `config.json` carries `ferret_version`, and the
  `output_files` that `atomic_dir` records there list every entry it holds. A folder with
  anything else in it (the user's notes, another run nested inside) is refused, naming it.
- **Inputs are never outputs** (`check_not_input`): an output path (or a sibling of a file
  output, `p.config.json`, `p.summary.json`) that is an input, a folder holding an input, or
  a path inside an input folder is refused before any work.
- **One writer at a time** (`output_lock`): `.NAME.lock` beside the output, held with
  `fcntl.flock` while the output is staged and committed; a second writer fails at once with
  one line naming the holder's pid. The kernel releases the lock of a killed writer.
- **No staging left for ever** (`remove_stale`): staging folders are `.NAME.<token>.partial`
  beside the output; whoever holds the lock may remove every one of them (a live writer would
  hold the lock), so a SIGKILLed run's leftovers go at the next write of the same output.
- **Errors of the file system are one line** (`writing`): a name too long, a read-only
  folder, a path under a file become a `FerretError` naming the path.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from planner.errors import FerretError

STAGING_SUFFIX = ".partial"
REPLACED_SUFFIX = ".replaced"  # the old folder between two renames, where RENAME_EXCHANGE is missing
FILE_SIBLINGS = ("config", "summary")  # p.json → p.config.json, p.summary.json
OUTPUT_FILES_KEY = "output_files"


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def siblings(path: Path) -> list[Path]:
    """The files written beside a single-file output `path`: `<stem>.config.json`, `<stem>.summary.json`."""
    return [path.with_name(f"{path.stem}.{role}.json") for role in FILE_SIBLINGS]


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a file-system error while preparing or committing `path` into one line naming it."""
    try:
        yield
    except FerretError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENAMETOOLONG:
            reason = "the name is too long for the file system"
        raise FerretError(f"cannot write {path}: {reason}") from None


def _within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_not_input(out: Path, kind: str, inputs: Iterable[Path]) -> None:
    """Refuse an output that would overwrite or replace an input (see the module docstring)."""
    outputs = [out] if kind == "folder" else [out, *siblings(out)]
    for source in inputs:
        real_in = os.path.realpath(source)
        for o in outputs:
            real_out = os.path.realpath(o)
            if real_in == real_out:
                raise FerretError(f"output {o} is also an input; writing it would destroy the input")
            if kind == "folder" and _within(real_in, real_out):
                raise FerretError(
                    f"--out {out} holds the input {source}; an output folder is replaced as a whole, choose another"
                )
            if os.path.isdir(real_in) and _within(real_out, real_in):
                raise FerretError(f"output {o} lies inside the input folder {source}; choose a path outside it")


def _owned_entries(folder: Path) -> set[str] | None:
    """The entries of a folder ferret wrote (every entry for one written before they were
    recorded), or None when its config.json does not say ferret wrote it."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(config, dict) or "ferret_version" not in config:
        return None
    recorded = config.get(OUTPUT_FILES_KEY)
    if not isinstance(recorded, list):
        return {p.name for p in folder.iterdir()}
    return {str(name) for name in recorded} | {"config.json"}


def check_replaceable(target: Path) -> None:
    """Refuse an output folder that is a file or holds anything ferret did not write there."""
    with writing(target):
        if not target.exists():
            return
        if not target.is_dir():
            raise FerretError(f"output path exists and is not a folder: {target}")
        entries = sorted(p.name for p in target.iterdir())
        if not entries:
            return
        owned = _owned_entries(target)
    if owned is None:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise FerretError(
            f"--out {target} holds files ferret did not write ({shown}); an output folder is replaced as a "
            "whole, so give a new or empty folder"
        )
    foreign = [name for name in entries if name not in owned]
    if foreign:
        raise FerretError(
            f"--out {target} holds {foreign[0]}, which ferret did not write there; an output folder is replaced "
            "as a whole, so move it or choose another folder"
        )


def check_file_output(target: Path) -> None:
    """Refuse a single-file output that names a folder."""
    if target.is_dir():
        raise FerretError(f"{target} is a folder; give the output's file name, e.g. {target / 'out.json'}")


def record_outputs(staging: Path) -> None:
    """Write the staged entries into the staged config.json (`output_files`), so that a later
    run can tell them from what a user adds to the folder."""
    config_path = staging / "config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if isinstance(config, dict):
        config[OUTPUT_FILES_KEY] = sorted(p.name for p in staging.iterdir())
        config_path.write_text(json.dumps(config, indent=2, allow_nan=False) + "\n", encoding="utf-8")


@contextlib.contextmanager
def made_parents(target: Path) -> Iterator[None]:
    """Create the missing parent folders of `target`; remove them again if the block fails."""
    missing: list[Path] = []
    parent = target.parent
    with writing(target):
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        if not parent.is_dir():
            raise FerretError(f"cannot write {target}: {parent} is a file, not a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in missing:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def output_lock(target: Path) -> Iterator[None]:
    """Hold `.NAME.lock` beside `target`; fail at once if another writer (another process, or
    another block of this one) holds it."""
    path = _lock_path(target)
    fd = _acquire(path, target)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _acquire(path: Path, target: Path) -> int:
    for _ in range(10):
        with writing(target):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FerretError(
                f"{target} is being written by another ferret ({holder}); wait for it or choose another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file its previous holder unlinked while we opened it
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
            return fd
        os.close(fd)
    raise FerretError(f"cannot lock {path}: it keeps changing; is another ferret writing {target}?")


def _leftovers(target: Path) -> Iterator[tuple[Path, str]]:
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.[A-Za-z0-9_]+({STAGING_SUFFIX}|{REPLACED_SUFFIX})$")
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            if (match := pattern.match(entry.name)) is not None:
                yield entry, match.group(1)


def remove_stale(target: Path) -> None:
    """Remove the staging folders a killed writer of `target` left (call with the lock held).
    An old folder caught between the two renames of a replace is put back if `target` is gone."""
    for entry, kind in list(_leftovers(target)):
        if kind == REPLACED_SUFFIX and not os.path.lexists(target):
            os.rename(entry, target)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def staging_dir(target: Path) -> Path:
    with writing(target):
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=STAGING_SUFFIX, dir=target.parent))


def _set_modes(staging: Path) -> None:
    """mkdtemp makes 0700 folders: give the output the modes a plain mkdir/open would."""
    file_mode, dir_mode = 0o666 & ~umask(), 0o777 & ~umask()
    staging.chmod(dir_mode)
    for item in staging.rglob("*"):
        item.chmod(dir_mode if item.is_dir() else file_mode)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_folder(staging: Path, target: Path) -> None:
    """Make `staging` the folder `target` in one rename (the old one ends in `staging`, which
    the caller removes); where the kernel cannot swap, two renames via a `.replaced` name."""
    _set_modes(staging)
    with writing(target):
        if not os.path.lexists(target):
            os.rename(staging, target)
        elif not _exchange(staging, target):
            old = target.with_name(staging.name.removesuffix(STAGING_SUFFIX) + REPLACED_SUFFIX)
            os.rename(target, old)
            os.rename(staging, target)
            os.rename(old, staging)
