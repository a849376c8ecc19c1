"""FigureSettings: the ``figures`` section is checked when it is created (messages name the key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_data import figure_settings


def test_good_settings_are_kept() -> None:
    s = figure_settings(Path("."))
    assert s.ced_axis_max == "auto" and s.qualitative_rows == 4
    assert figure_settings(Path("."), ced_axis_max=0.2).ced_axis_max == 0.2


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("ced_axis_max", 0.05, r"figures.ced_axis_max: .*\[max_error, 1\]"),
        ("ced_axis_max", "wide", r"figures.ced_axis_max: expected 'auto'"),
        ("qualitative_rows", 0, r"figures.qualitative_rows: .*\[1, 20\]"),
        ("max_error", 0.0, r"figures.max_error: .*\(0, 1\]"),
        ("dpi", 10, r"figures.dpi: .*\[20, 600\]"),
    ],
)
def test_bad_values_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        figure_settings(Path("."), **{key: value})
