"""The settings of the paper's figures (params.yaml section ``figures``), checked on creation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


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
        if not 1 <= self.qualitative_rows <= 20:
            raise ValueError(
                "figures.qualitative_rows: expected an integer in [1, 20], "
                f"got {self.qualitative_rows}"
            )
        if not 0 < self.max_error <= 1:
            raise ValueError(
                f"figures.max_error: expected a number in (0, 1], got {self.max_error}"
            )
        if not 20 <= self.dpi <= 600:
            raise ValueError(f"figures.dpi: expected an integer in [20, 600], got {self.dpi}")
