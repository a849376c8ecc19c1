"""ClosesOnExit: ``with`` returns the object itself and closes it on leaving, error or not."""

from __future__ import annotations

import pytest

from uvgen.closing import ClosesOnExit


class _Reader(ClosesOnExit):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_with_returns_the_object_and_closes_it_once() -> None:
    reader = _Reader()
    with reader as r:
        assert r is reader and reader.closed == 0
    assert reader.closed == 1


def test_closes_when_the_block_raises_and_lets_the_error_through() -> None:
    reader = _Reader()
    with pytest.raises(KeyError), reader:
        raise KeyError("x")
    assert reader.closed == 1


def test_a_class_without_close_says_so() -> None:
    with pytest.raises(NotImplementedError), ClosesOnExit():
        pass
