"""Bad input data: :class:`DataError` (the sample cannot be used) and :class:`DataWarning` (an
unusual variant of a field the pipeline does not use; the sample is kept). Both name the file and
the field."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")


class _AboutAFile:
    """An error or warning about a file: ``path``, ``field`` (None: the whole file) and ``reason``,
    shown as ``PATH [field 'FIELD']: REASON``."""

    def __init__(self, path: str | Path, field: str | None, reason: str):
        self.path = Path(path)
        self.field = field
        self.reason = reason
        where = f"{self.path}" if field is None else f"{self.path} [field '{field}']"
        super().__init__(f"{where}: {reason}")


class DataError(_AboutAFile, ValueError):
    """Bad input: a missing or corrupt file, a missing field, a wrong shape or a non-finite value.

    ``path`` is the offending file, ``field`` the field inside it (None when the whole file is bad).
    """


class StageError(RuntimeError):
    """An expected failure whose message says it all (another build holds the output, a folder
    holds files the project did not make): reported as that one line, without a traceback."""


class DataWarning(_AboutAFile, UserWarning):
    """An unusual but harmless variant in an input file: a field the pipeline does not use is
    missing, has an unexpected shape, or holds non-finite values. The sample is still used.

    Real data has such files: three AFLW2000-3D files store ``pt2d`` as (2, 23) instead of (2, 21).
    ``path``, ``field`` and ``reason`` as :class:`DataError`.
    """


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def check_not_lfs_pointer(path: str | Path) -> None:
    """DataError when ``path`` is a Git LFS pointer (the small text file a clone without LFS holds
    in place of the data); an unreadable file is left to the reader."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(LFS_POINTER))
    except OSError:
        return
    if head == LFS_POINTER:
        raise DataError(
            path,
            None,
            "a Git LFS pointer, not the data: fetch it with `git lfs pull` (or download the file)",
        )


def warn_data(path: str | Path, field: str | None, reason: str) -> None:
    """Emit a :class:`DataWarning` (Python's ``warnings``: shown once per distinct message)."""
    warnings.warn(DataWarning(path, field, reason), stacklevel=3)


def not_a_file_reason(path: Path) -> str:
    """Why ``path`` cannot be read as a file: a folder, a dangling symbolic link, or missing."""
    if path.is_dir():
        return "is a folder, not a file"
    if path.is_symlink():
        return f"a symbolic link to a missing file ({os.readlink(path)})"
    return "missing file"


def read_whole_file(
    path: Path, read: Callable[[Path], _T], what: str, errors: type | tuple = Exception
) -> _T:
    """``read(path)``; DataError naming ``path`` when it is no file (:func:`not_a_file_reason`)
    or ``read`` raises one of ``errors`` ('cannot read WHAT (Type: message)')."""
    if not path.is_file():
        raise DataError(path, None, not_a_file_reason(path))
    try:
        return read(path)
    except errors as exc:
        raise DataError(path, None, f"cannot read {what} ({type(exc).__name__}: {exc})") from exc
