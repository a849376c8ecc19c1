"""Resumable work directories: one build at a time (a lock), a settings manifest that decides
whether finished work is reused (and marks the folder as the project's), and file digests."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uvgen.atomic import atomic_write_text, unique_tmp_name  # noqa: F401 - unique_tmp_name: for callers
from uvgen.formats.errors import DataError, StageError

# Written into every folder prepare_resumable_dir makes: the settings of the run that fills it, and
# the mark that the folder belongs to the project (only such folders are ever cleared).
MANIFEST = ".stage_params.json"


class BuildLockedError(StageError):
    """Another process holds the lock of the same output."""


class ForeignDirectoryError(StageError):
    """A folder to be cleared holds files the project did not make."""


def file_digest(*paths: Path) -> str:
    """SHA-256 over the bytes of the given files, in order."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def remove_stale_temporaries(*finals: Path) -> None:
    """Remove the temporaries of ``finals`` left by killed writers: ``.NAME.*.tmp``
    (:func:`unique_tmp_name`) and ``NAME.tmp``. Only under the lock that guards ``finals``."""
    for final in map(Path, finals):
        if final.parent.is_dir():
            for path in final.parent.glob(f".{final.name}.*.tmp"):
                path.unlink(missing_ok=True)
        Path(f"{final}.tmp").unlink(missing_ok=True)


def check_output_file(path: Path, named_by: str | None = None) -> None:
    """DataError before any work when the output file ``path`` cannot be made: a folder is there,
    or a file stands where one of its folders should be. ``named_by``: the setting that gave it."""
    path = Path(path)
    by = f" ({named_by})" if named_by else ""
    if path.is_dir():
        raise DataError(path, None, f"is a folder; an output file is expected here{by}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(path, None, f"{parent} is a file, not a folder{by}")
            return


def lock_path_for(target: Path) -> Path:
    """The lock file that guards ``target`` (a file or folder): ``.NAME.lock`` beside it."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _holder_pid(fd: int) -> str:
    """The pid written in a held lock file ('unknown' while its holder has not written it yet)."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "unknown"


@contextlib.contextmanager
def exclusive_lock(target: Path, what: str = "build") -> Iterator[None]:
    """Hold the lock of ``target`` for the block, or raise :class:`BuildLockedError` at once
    ("another WHAT of TARGET is running (pid N)").

    ``flock`` on ``.NAME.lock`` beside ``target``, which records the holder's pid; the kernel
    releases it when the holder dies, however it dies. The file is removed on release; a process
    that locked a file removed meanwhile notices it (another inode at the path) and starts over.
    """
    target = Path(target)
    path = lock_path_for(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            raise BuildLockedError(f"another {what} of {target} is running (pid {pid})") from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            break
        os.close(fd)  # the previous holder removed the file after we opened it: start over
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # still ours: others remove it only while holding the lock
        os.close(fd)


# What the manifest holds while a folder is being cleared: it matches no settings, so a run
# interrupted during a clear never reuses what is left, and the folder stays the project's.
CLEARING = "clearing"


def _clear_entries(out_dir: Path) -> None:
    """Remove everything in ``out_dir`` but the manifest, after marking it :data:`CLEARING`."""
    atomic_write_text(out_dir / MANIFEST, CLEARING)
    for entry in out_dir.iterdir():
        if entry.name == MANIFEST:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def prepare_resumable_dir(out_dir: Path, settings: dict[str, Any]) -> bool:
    """Make ``out_dir`` ready for a run with ``settings``; returns True when resuming.

    A folder left by an interrupted run with the same settings is kept (its finished work is
    reused); one made with other settings is cleared, so stale samples never mix with new ones.
    Only folders the project made (they hold :data:`MANIFEST`) or empty ones are ever cleared: a
    non-empty folder without it raises :class:`ForeignDirectoryError` and nothing is touched. The
    manifest is marked :data:`CLEARING` first and rewritten last, so a folder left by an
    interrupted clear is still the project's and is never resumed.
    """
    out_dir = Path(out_dir)
    manifest = out_dir / MANIFEST
    wanted = json.dumps(settings, sort_keys=True, default=str)
    if manifest.exists() and manifest.read_text() == wanted:
        return True
    if out_dir.exists() and not out_dir.is_dir():
        raise ForeignDirectoryError(f"{out_dir} is not a folder; refusing to replace it")
    if out_dir.exists() and not manifest.exists() and any(out_dir.iterdir()):
        raise ForeignDirectoryError(
            f"refusing to clear {out_dir}: it is not empty and was not made by this project "
            f"(no {MANIFEST}); empty it or choose another folder"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_entries(out_dir)
    atomic_write_text(manifest, wanted)
    return False


def remove_resumable_dir(out_dir: Path) -> None:
    """Remove a finished run's folder so that no moment leaves part of it reusable: marked
    :data:`CLEARING` first, its manifest removed last."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return
    _clear_entries(out_dir)
    (out_dir / MANIFEST).unlink()
    out_dir.rmdir()
