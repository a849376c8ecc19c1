"""Checks of configuration values, shared by every typed configuration (pipeline/config.py,
model/train.py, model/baselines, eval/figure_settings.py): each raises ValueError ``KEY: must be
..., got VALUE``, which the typed reader (pipeline.typed_yaml) turns into one line naming the
file, e.g. ``params.yaml: train.lr: must be > 0, got -1.0``. No torch: uvgen's stages use them."""

from __future__ import annotations

import re

import numpy as np

MAX_SEED = 2**32 - 1  # numpy's and torch's seeds alike
DEVICE_SPEC = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_range(
    key: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """ValueError unless ``low <= value <= high`` (``<`` where the end is open; None: no bound)."""
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    if above and below:
        return
    lo, hi = (f"{v:g}" if isinstance(v, float) else str(v) for v in (low, high))
    if high is None:
        bound = f"{'>' if low_open else '>='} {lo}"
    elif low is None:
        bound = f"{'<' if high_open else '<='} {hi}"
    else:
        bound = f"in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
    raise ValueError(f"{key}: must be {bound}, got {value!r}")


def check_seed(key: str, value: int) -> None:
    """A seed: an integer in [0, 2**32 - 1]."""
    check_range(key, value, 0, MAX_SEED)


def check_device(key: str, spec: str) -> None:
    """A device: 'auto', 'cpu', 'cuda' or 'cuda:N'."""
    if not DEVICE_SPEC.fullmatch(str(spec)):
        raise ValueError(f"{key}: must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")


MIN_UV_SIZE, MAX_UV_SIZE = 32, 2048


def check_uv_size(key: str, value: int) -> None:
    """A UV map (and crop) side: a whole multiple of 32 in [32, 2048] pixels (PRNet's encoder
    halves its input five times)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{key}: must be a whole number of pixels, got {value!r}")
    check_range(key, int(value), MIN_UV_SIZE, MAX_UV_SIZE)
    if value % 32:
        raise ValueError(f"{key}: must be a multiple of 32 (e.g. 128, 256, 512), got {value}")
