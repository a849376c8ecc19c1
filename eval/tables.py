"""Per-image result tables and the yaw-binned summary of the AFLW2000-3D protocol (pandas).

A per-image table has one row per test image and the columns ``name`` (str), ``yaw`` (degrees,
the yaw of ``Pose_Para``; the sign is irrelevant) and one float column per metric holding that
image's error as a unitless fraction (NME, not %). Suggested metric column names: :data:`METRICS`.

:func:`summarise` follows 3DDFA's benchmark: mean per |yaw| bin, the paper's "Mean" = mean of the
three bin means (balanced), its std = population std (ddof=0) of the three bin means, plus the
plain mean over all images beside it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from eval.metrics import YAW_BIN_LABELS, yaw_bin
from uvgen.formats.errors import DataError

METRICS: tuple[str, ...] = (
    "nme_2d_68",
    "nme_3d_68",
    "nme_2d_68_re",
    "nme_2d_dense",
    "nme_3d_dense",
    "recon_3d_dense",
)
"""NME metric column names: 68-landmark 2D and 3D NME, 2D NME on 3DDFA's re-annotated
landmarks, dense 2D and 3D NME, dense 3D reconstruction error."""

_NAN = math.nan

PUBLISHED_NME_68: dict[str, dict[str, float]] = {
    "3DDFA (CVPR 2016)": {"0-30": 3.78, "30-60": 4.54, "60-90": 7.93, "mean": 5.42},
    "DeFA (ICCVW 2017)": {"0-30": _NAN, "30-60": _NAN, "60-90": _NAN, "mean": 4.50},
    "PRN (ECCV 2018)": {"0-30": 2.75, "30-60": 3.51, "60-90": 4.61, "mean": 3.62},
}
"""Published 68-point 2D NME (%) on AFLW2000-3D per |yaw| bin and the balanced mean (NaN = not
reported)."""

PUBLISHED_RECON_NME: dict[str, float] = {"DeFA (ICCVW 2017)": 5.64, "PRN (ECCV 2018)": 3.96}
"""Published 3D reconstruction NME (%) on AFLW2000-3D, as reported in the PRN paper."""

PUBLISHED_PRN_MS_PER_IMAGE_GTX1080: float = 9.8
"""PRN's reported inference time, ms per image on a GTX 1080."""

SUMMARY_COLUMNS: tuple[str, ...] = (
    *YAW_BIN_LABELS,
    "mean",
    "std",
    "all",
    *(f"n_{b}" for b in YAW_BIN_LABELS),
)

_BASE_COLUMNS = ("name", "yaw")


# --------------------------------------------------------------------------- per-image tables
def _check_per_image(df: pd.DataFrame, source: str | Path) -> list[str]:
    """Validate the layout; return the metric columns (all but name, yaw)."""
    for col in _BASE_COLUMNS:
        if col not in df.columns:
            raise DataError(source, col, f"missing column (have {list(df.columns)})")
    metrics = [c for c in df.columns if c not in _BASE_COLUMNS]
    for col in ["yaw", *metrics]:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise DataError(source, col, f"column must be numeric, got dtype {df[col].dtype}")
    if not np.all(np.isfinite(df["yaw"].to_numpy(dtype=np.float64))):
        raise DataError(source, "yaw", "contains missing or non-finite values")
    if df["name"].duplicated().any():
        dup = df.loc[df["name"].duplicated(), "name"].iloc[0]
        raise DataError(source, "name", f"duplicate image name {dup!r}")
    return metrics


def per_image_table(
    names: Sequence[str], yaws_deg: ArrayLike, **metrics: ArrayLike
) -> pd.DataFrame:
    """Build a per-image table: columns name, yaw (degrees), then each metric (fractions), in
    order."""
    data: dict[str, object] = {
        "name": [str(n) for n in names],
        "yaw": np.asarray(yaws_deg, dtype=np.float64),
    }
    for key, vals in metrics.items():
        data[key] = np.asarray(vals, dtype=np.float64)
    lengths = {k: len(v) for k, v in data.items()}
    if len(set(lengths.values())) != 1:
        raise DataError("<per_image>", None, f"columns differ in length: {lengths}")
    df = pd.DataFrame(data)
    _check_per_image(df, "<per_image>")
    return df


def write_per_image(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a per-image table as CSV (columns name, yaw, metrics; full float precision)."""
    path = Path(path)
    metrics = _check_per_image(df, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.loc[:, [*_BASE_COLUMNS, *metrics]].to_csv(path, index=False)
    return path


def read_per_image(path: str | Path) -> pd.DataFrame:
    """Read a per-image CSV written by :func:`write_per_image`; ``name`` stays a string."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found")
    try:
        df = pd.read_csv(path, dtype={"name": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, None, f"unreadable CSV: {exc}") from exc
    _check_per_image(df, path)
    return df


# --------------------------------------------------------------------------- summary
def summarise(
    per_image: pd.DataFrame, metrics: Iterable[str] | None = None, percent: bool = False
) -> pd.DataFrame:
    """Yaw-binned summary of a per-image table, one row per metric.

    Columns (:data:`SUMMARY_COLUMNS`): the bin means ``0-30``, ``30-60``, ``60-90`` (bins on |yaw|:
    [0,30], (30,60], (60,inf)); ``mean`` = mean of the bin means (balanced, the paper's "Mean");
    ``std`` = population std (ddof=0) of the bin means, as 3DDFA reports; ``all`` = mean over all
    images; ``n_<bin>`` = images counted in each bin.

    A bin with no images has mean NaN; ``mean`` and ``std`` are then over the non-empty bins only
    and a ``UserWarning`` is issued. Non-finite metric values (a failed image) are left out of that
    metric's statistics and counts, also with a warning.

    Args:
        per_image: table with columns name, yaw and the metrics.
        metrics: columns to summarise; default all but name and yaw.
        percent: multiply the means and std by 100 (counts unchanged).
    """
    available = _check_per_image(per_image, "<per_image>")
    metrics = available if metrics is None else list(metrics)
    for m in metrics:
        if m not in available:
            raise DataError("<per_image>", m, f"not a metric column (have {available})")
    bins = np.asarray(yaw_bin(per_image["yaw"].to_numpy(dtype=np.float64)))
    factor = 100.0 if percent else 1.0
    rows = {}
    for m in metrics:
        vals = per_image[m].to_numpy(dtype=np.float64)
        ok = np.isfinite(vals)
        if not ok.all():
            warnings.warn(
                f"metric {m!r}: {int((~ok).sum())} non-finite value(s) left out", stacklevel=2
            )
        counts = np.array([int((ok & (bins == b)).sum()) for b in range(3)])
        means = np.array([vals[ok & (bins == b)].mean() if counts[b] else np.nan for b in range(3)])
        if (counts == 0).any():
            empty = [YAW_BIN_LABELS[b] for b in range(3) if counts[b] == 0]
            warnings.warn(
                f"metric {m!r}: yaw bin(s) {empty} empty; balanced mean/std over the others",
                stacklevel=2,
            )
        filled = means[counts > 0]
        bal = filled.mean() if filled.size else np.nan
        std = filled.std() if filled.size else np.nan
        overall = vals[ok].mean() if ok.any() else np.nan
        rows[m] = [*(means * factor), bal * factor, std * factor, overall * factor, *counts]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=list(SUMMARY_COLUMNS))
    out.index.name = "metric"
    return out.astype({f"n_{b}": np.int64 for b in YAW_BIN_LABELS})
