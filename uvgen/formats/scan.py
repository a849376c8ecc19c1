"""Listing and reading many sample files: stop at the first bad one, or collect bad ones and go
on."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from uvgen.formats.errors import DataError

T = TypeVar("T")


@dataclass(frozen=True)
class Reject:
    """A sample that could not be read: the offending file, the field (None = whole file), why."""

    path: Path
    field: str | None
    reason: str

    @classmethod
    def from_error(cls, error: DataError) -> Reject:
        return cls(error.path, error.field, error.reason)

    def __str__(self) -> str:
        where = str(self.path) if self.field is None else f"{self.path} [field '{self.field}']"
        return f"{where}: {self.reason}"


def list_files(directory: str | Path, suffix: str) -> list[Path]:
    """Sorted visible entries directly in ``directory`` whose name ends with ``suffix``.

    Folders and dangling symbolic links with such a name are listed too, so that their reader
    rejects them by name instead of leaving them out unseen. Hidden names (such as the
    ``.NAME.*.tmp`` files of an interrupted atomic writer) are skipped.
    """
    with os.scandir(directory) as entries:
        return sorted(
            Path(entry.path)
            for entry in entries
            if entry.name.endswith(suffix) and not entry.name.startswith(".")
        )


def read_all(
    paths: Iterable[str | Path],
    reader: Callable[[Path], T],
    collect_rejects: bool = False,
) -> tuple[list[T], list[Reject]]:
    """``reader(path)`` for every path, in order.

    With ``collect_rejects=False`` the first :class:`DataError` propagates (rejects stay empty);
    with ``True`` each failing sample becomes a :class:`Reject` and reading continues.
    Errors other than DataError (bugs, KeyboardInterrupt) always propagate.
    """
    items: list[T] = []
    rejects: list[Reject] = []
    for path in paths:
        try:
            items.append(reader(Path(path)))
        except DataError as error:
            if not collect_rejects:
                raise
            rejects.append(Reject.from_error(error))
    return items, rejects
