"""Opening an HDF5 file for reading with errors that name it: the one place h5py's open errors
become the project's one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py

from uvgen.formats.errors import DataError


def open_h5(path: str | Path, **kwargs: Any) -> h5py.File:
    """``h5py.File(path, "r", **kwargs)``. A missing file raises ``FileNotFoundError`` with
    ``filename=path`` (a folder: ``IsADirectoryError``); a file HDF5 cannot read (not HDF5,
    truncated, damaged) raises :class:`DataError` ``(path, None, "not a readable HDF5 file
    (REASON)")``, REASON being h5py's words in its parentheses, e.g. "file signature not found"."""
    path = Path(path)
    try:
        return h5py.File(path, "r", **kwargs)
    except FileNotFoundError as exc:
        raise FileNotFoundError(exc.errno, "No such file or directory", str(path)) from exc
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and not path.exists():
            raise FileNotFoundError(2, "No such file or directory", str(path)) from exc
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path)) from exc
        text = str(exc)
        detail = text[text.find("(") + 1 : text.rfind(")")] if "(" in text else text
        raise DataError(path, None, f"not a readable HDF5 file ({detail})") from exc
