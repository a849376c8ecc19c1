"""pipeline.typed_yaml: the generic reader on any dataclass (params.yaml's sections:
tests/pipeline/test_config.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from pipeline.typed_yaml import ConfigError, read_section


@dataclass(frozen=True)
class _Inner:
    a: int
    b: float = 0.5


@dataclass(frozen=True)
class _Section:
    pair: tuple[float, float]
    names: list[str]
    mode: Literal["x", "y"] | None
    inner: _Inner
    items: tuple[_Inner, ...] = ()


def test_generic_reader_on_any_dataclass() -> None:
    s = read_section(
        _Section,
        {
            "pair": [1, 2.5],
            "names": ["p"],
            "mode": None,
            "inner": {"a": 3},
            "items": [{"a": 1, "b": 2}],
        },
        "sec",
    )
    assert s.pair == (1.0, 2.5) and s.names == ["p"] and s.mode is None
    assert s.inner == _Inner(3, 0.5) and s.items == (_Inner(1, 2.0),)
    base = {"pair": [1, 2], "names": [], "mode": "x", "inner": {"a": 1}}
    for change, key, reason in [
        ({"pair": [1]}, "sec.pair", "2 values"),
        ({"names": ["a", 3]}, "sec.names[1]", "expected a string"),
        ({"mode": "z"}, "sec.mode", "one of 'x', 'y' or null"),
        ({"inner": {"a": 1.5}}, "sec.inner.a", "expected an integer"),
        ({"inner": {"b": 1.0}}, "sec.inner.a", "missing key"),
        ({"items": [{"a": True}]}, "sec.items[0].a", "expected an integer, got True"),
    ]:
        with pytest.raises(ConfigError) as info:
            read_section(_Section, {**base, **change}, "sec", "p.yaml")
        assert str(info.value).startswith(f"p.yaml: {key}: ") and reason in str(info.value), str(
            info.value
        )
