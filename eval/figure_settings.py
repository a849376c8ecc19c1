"""The settings of the paper's figures (params.yaml section ``figures``), checked on creation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from uvgen.checks import check_range


@dataclass(frozen=True)
class FigureSettings:
    """What the figures need to know: the ``figures`` section of params.yaml (stage ``figures``;
    eval/paper_figures.py). Error rates (``max_error``, ``ced_axis_max``) are fractions of the
    normalising size; yaws in degrees."""

    test_file: Path
    model_dir: Path | None
    predictions_dir: Path
    eval_dir: Path
    out_dir: Path
    uv_sample: str | None
    uv_sample_yaw: float
    qualitative_rows: int
    qualitative_max_yaw: float
    max_error: float
    ced_axis_max: Literal["auto"] | float
    dpi: int
    pdf: bool

    def __post_init__(self) -> None:
        if self.ced_axis_max != "auto" and not (
            isinstance(self.ced_axis_max, (int, float)) and self.max_error <= self.ced_axis_max <= 1
        ):
            raise ValueError(
                f"figures.ced_axis_max: expected 'auto' or a number in [max_error, 1], "
                f"got {self.ced_axis_max!r}"
            )
        check_range("figures.uv_sample_yaw", self.uv_sample_yaw, -180, 180)
        check_range("figures.qualitative_rows", self.qualitative_rows, 1, 20)
        check_range("figures.qualitative_max_yaw", self.qualitative_max_yaw, 0, 180, low_open=True)
        check_range("figures.max_error", self.max_error, 0, 1, low_open=True)
        check_range("figures.dpi", self.dpi, 20, 600)
