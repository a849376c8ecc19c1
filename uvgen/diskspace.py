"""A full disk as one clear error: "No space left on device: PATH".

HDF5 reports a full disk as a long error stack (and a write that fails half-way can leave the C
library in a state where closing the file crashes), torch's zip writer as "enforce fail ...
unexpected pos". So writers check the free space against what they are about to write
(:func:`ensure_free_space`), convert a failure that still happens (:func:`disk_full_as_error`), and
write through :mod:`uvgen.atomic`. Nothing is left under a final name.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

# Room kept free beyond an estimate (file-system metadata, HDF5 headers and B-trees).
MARGIN_BYTES = 8 << 20
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """Not enough room on the file system of ``path``; ``str()`` is one line."""

    def __init__(self, path: str | Path, detail: str = ""):
        super().__init__(
            errno.ENOSPC, "No space left on device", str(path)
        )  # errno and filename set
        self.path = str(path)
        self.detail = detail

    def __str__(self) -> str:
        return f"No space left on device: {self.path}" + (
            f" ({self.detail})" if self.detail else ""
        )

    def __reduce__(self):  # crosses process boundaries (dask workers) intact
        return (type(self), (self.path, self.detail))


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it was raised from) reports a full disk or quota."""
    while err is not None:
        if isinstance(err, DiskFullError):
            return True
        if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
            return True
        text = str(err)
        if (
            "No space left on device" in text
            or "errno = 28," in text
            or "Disk quota exceeded" in text
        ):
            return True
        err = err.__cause__ or err.__context__
    return False


def free_bytes(path: str | Path) -> int:
    """Free bytes for this user on the file system of ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def ensure_free_space(path: str | Path, need_bytes: int, margin: int = MARGIN_BYTES) -> None:
    """Raise :class:`DiskFullError` naming ``path`` unless ``need_bytes + margin`` are free."""
    free = free_bytes(path)
    if free < need_bytes + margin:
        raise DiskFullError(path, f"needs about {_size(need_bytes + margin)}, {_size(free)} free")


@contextlib.contextmanager
def disk_full_as_error(path: str | Path) -> Iterator[None]:
    """Turn a full-disk failure inside the block into :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as err:
        if is_disk_full(err):
            raise DiskFullError(path) from err
        raise
