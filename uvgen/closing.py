"""A mixin for file-like readers: ``with Reader(path) as r:`` closes ``r`` on leaving the block."""

from __future__ import annotations

from typing import TypeVar

_Self = TypeVar("_Self", bound="ClosesOnExit")


class ClosesOnExit:
    """``__enter__`` returns the object; ``__exit__`` calls ``close`` (which the class defines)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
