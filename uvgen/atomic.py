"""Atomic file writes: the one way the project puts a file under its final name.

Every writer writes to a temporary file of its own call beside the target,
``.NAME.PID.TOKEN.tmp`` (:func:`unique_tmp_name`: no other process or call uses it), and renames it
over ``NAME`` (``os.replace``, atomic on one file system) only when the data is complete. A killed
writer leaves the previous file (or none) and at worst a temporary file, which
:func:`uvgen.resumable.remove_stale_temporaries` clears; an error removes the temporary file.

An ``OSError`` raised inside that carries no file name (a ``write`` on a full disk, HDF5's and
torch's errors) is given the final name, so the one-line error of :mod:`pipeline.stage` names the
file being written without looking anywhere else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from uvgen.diskspace import disk_full_as_error, ensure_free_space


def unique_tmp_name(path: str | Path) -> Path:
    """A temporary name beside ``path`` that no other process or call uses (pid + random token)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def fsync_file(path: str | Path) -> None:
    """Flush ``path``'s data to the disk (against a machine crash, not only a killed process)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def naming_errors(path: str | Path) -> Iterator[None]:
    """Give an ``OSError`` raised in the block that names no file the name ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = os.fspath(path)
        raise


@contextmanager
def atomic_path(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """Yield this call's temporary path beside ``path`` to write (the caller creates the file);
    when the block completes it is fsynced (``durable``) and renamed over ``path``; on any error
    it is removed and ``path`` is left as it was. The parent folder must exist."""
    path = Path(path)
    tmp = unique_tmp_name(path)
    try:
        with naming_errors(path):
            yield tmp
            if durable:
                fsync_file(tmp)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_output(path: str | Path, durable: bool = False) -> Iterator[IO[bytes]]:
    """A binary file handle whose data appears at ``path`` only when the block completes. The file
    mode follows the process umask, like a plain ``open``."""
    with atomic_path(path, durable) as tmp, open(tmp, "xb") as handle:
        yield handle


def atomic_write_bytes(path: str | Path, data: bytes | memoryview, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically, fsynced (``durable``). The free space is checked
    first; a full disk raises :class:`~uvgen.diskspace.DiskFullError` naming ``path`` and leaves
    neither ``path`` changed nor the temporary file behind. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ensure_free_space(path.parent, len(data), margin=0)
    with disk_full_as_error(path), atomic_output(path, durable) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str, durable: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; a full disk is a
    :class:`~uvgen.diskspace.DiskFullError` naming ``path``."""
    with disk_full_as_error(path), atomic_output(path, durable) as handle:
        handle.write(text.encode("utf-8"))
