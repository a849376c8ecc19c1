"""The one error type for bad input data: it always names the file and the field."""
from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input: a missing or corrupt file, a missing field, a wrong shape or a non-finite value.

    ``path`` is the offending file, ``field`` the field inside it (None when the whole file is bad).
    """

    def __init__(self, path: str | Path, field: str | None, reason: str):
        self.path = Path(path)
        self.field = field
        self.reason = reason
        where = f"{self.path}" if field is None else f"{self.path} [field '{field}']"
        super().__init__(f"{where}: {reason}")
