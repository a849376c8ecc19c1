"""The one-warning check shared by the tests of the data-set readers (uvgen.formats)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from uvgen.formats.errors import DataWarning

T = TypeVar("T")


def read_with_one_warning(
    read: Callable[[Path], T], path: Path, field: str, reason: str
) -> tuple[T, DataWarning]:
    """``read(path)``, which must give exactly one DataWarning, naming ``path`` and ``field`` with
    ``reason`` in its reason: (what it read, the warning)."""
    with pytest.warns(DataWarning) as record:
        result = read(path)
    (warning,) = [w.message for w in record if issubclass(w.category, DataWarning)]
    assert warning.path == path and warning.field == field and reason in warning.reason
    return result, warning
