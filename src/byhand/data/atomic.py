"""Atomic writes: a file appears complete under its name, or not at all.

Every write goes to a locked ``.<name>.<random>.part`` file in the same folder,
created with the permissions the umask gives, flushed to disk and renamed into place
only when complete (:func:`atomic_file`); a ``.part`` file left by a killed process is
removed by the next writer (:func:`remove_stale_parts`). Folders created for a write
that then fails are removed again (:func:`new_folders_removed_on_failure`), so a failed
download leaves nothing behind.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows, where an open file cannot be deleted, which protects it as well
    fcntl = None

__all__ = ["atomic_file", "new_folders_removed_on_failure", "remove_stale_parts"]


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Yield a new temporary file next to ``path``; rename it into place if the block succeeds.

    The file is created with the permissions the process umask allows, written,
    flushed to disk (``fsync``) and renamed over ``path``; if the block raises, it is
    deleted. While it is being written it is locked, and :func:`remove_stale_parts`
    deletes only unlocked ones: those whose writer was killed.

    Examples:
        >>> import tempfile; tmp = tempfile.TemporaryDirectory(); path = Path(tmp.name, "a.bin")
        >>> with atomic_file(path) as handle:
        ...     _ = handle.write(b"whole")
        >>> path.read_bytes(), sorted(p.name for p in path.parent.iterdir())
        (b'whole', ['a.bin'])
        >>> tmp.cleanup()
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(path)
    handle, tmp = _new_part(path)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            if fcntl is not None:  # rename while the lock still guards the file
                os.replace(tmp, path)
        if fcntl is None:  # Windows renames only closed files
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_part(path: Path) -> tuple[BinaryIO, Path]:
    """Create and lock ``.<name>.<random>.part`` next to ``path``; return it open for writing."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
        handle = tmp.open("xb")  # mode 0o666 less the umask, like any new file
        if fcntl is None:
            return handle, tmp
        fcntl.flock(handle, fcntl.LOCK_EX)
        if os.fstat(handle.fileno()).st_nlink:
            return handle, tmp
        handle.close()  # a cleaner removed it before the lock was taken: take another name


def remove_stale_parts(path: Path) -> None:
    """Delete the ``.part`` files of ``path`` that no live process is writing.

    Examples:
        >>> import tempfile; tmp = tempfile.TemporaryDirectory(); path = Path(tmp.name, "a.bin")
        >>> _ = path.with_name(".a.bin.0123.part").write_bytes(b"half")
        >>> remove_stale_parts(path); list(Path(tmp.name).iterdir())
        []
        >>> tmp.cleanup()
    """
    if not path.parent.is_dir():
        return
    for part in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        try:
            with part.open("rb") as handle:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                part.unlink()
        except OSError:  # being written (locked; on Windows, open), already gone, or read-only
            continue


@contextmanager
def new_folders_removed_on_failure(folder: Path) -> Iterator[None]:
    """Run the block; if it raises, remove the folders up to ``folder`` that it created and left empty.

    Examples:
        >>> import tempfile; tmp = tempfile.TemporaryDirectory()
        >>> try:
        ...     with new_folders_removed_on_failure(Path(tmp.name, "a", "b")):
        ...         Path(tmp.name, "a", "b").mkdir(parents=True)
        ...         raise OSError("no network")
        ... except OSError:
        ...     pass
        >>> list(Path(tmp.name).iterdir())
        []
        >>> tmp.cleanup()
    """
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    try:
        yield
    except BaseException:
        for created in missing:  # deepest first
            try:
                created.rmdir()
            except OSError:  # not empty, already gone, or not ours to remove
                break
        raise
