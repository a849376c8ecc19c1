"""Cumulative error distribution (CED) of per-image NMEs, its area, and a plot.

NMEs are unitless fractions (0.05 = 5%). The CED at x is the fraction of test images whose NME is
at most x, for x in [0, max_error] (the protocol uses 10%). Non-finite NMEs (a failed image) count
as infinitely large: they stay in the denominator and are never at most x.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from uvgen.formats.errors import DataError

_SRC = "<array>"


def _errors(nme_values: ArrayLike, max_error: float) -> np.ndarray:
    e = np.asarray(nme_values, dtype=np.float64).ravel()
    if e.size == 0:
        raise DataError(_SRC, "nme_values", "no values")
    if np.any(e < 0):
        raise DataError(_SRC, "nme_values", "NME values must be >= 0")
    if not (np.isfinite(max_error) and max_error > 0):
        raise DataError(_SRC, "max_error", f"must be finite and > 0, got {max_error}")
    return np.where(np.isfinite(e), e, np.inf)


def ced_curve(
    nme_values: ArrayLike, max_error: float = 0.10, n_points: int = 1001
) -> tuple[np.ndarray, np.ndarray]:
    """CED sampled at ``n_points`` evenly spaced thresholds from 0 to ``max_error`` inclusive.

    Returns:
        (x, y): x (n_points,) thresholds as fractions; y (n_points,) fraction of images with
        NME <= x, non-decreasing in [0, 1].
    """
    e = np.sort(_errors(nme_values, max_error))
    if n_points < 2:
        raise DataError(_SRC, "n_points", f"need at least 2, got {n_points}")
    x = np.linspace(0.0, max_error, n_points)
    y = np.searchsorted(e, x, side="right") / e.size
    return x, y


def ced_auc(nme_values: ArrayLike, max_error: float = 0.10) -> float:
    """Area under the CED on [0, max_error], divided by ``max_error`` so that it lies in [0, 1].

    Exact integral of the step function, not a trapezoid over sampled points: an image with NME e
    contributes ``max(0, max_error - e) / max_error`` to the mean over images (1 for e = 0, 0 for
    e >= max_error).
    """
    e = _errors(nme_values, max_error)
    return float(np.mean(np.clip(max_error - e, 0.0, max_error)) / max_error)


def plot_ced(
    curves: Mapping[str, ArrayLike],
    path: str | Path,
    title: str = "CED on AFLW2000-3D",
    max_error: float = 0.10,
    xlabel: str = "NME (%)",
) -> Path:
    """Plot the CED of each method's per-image NMEs and save it as a PNG.

    Args:
        curves: method label -> per-image NME values (fractions). The legend shows each label with
            its AUC (:func:`ced_auc`) and its mean NME over all images in %
            (not the yaw-balanced mean).
        path: output PNG file (parent folders are created).
        title: figure title.
        max_error: right end of the x axis, fraction (axis drawn in %).
        xlabel: x-axis label.
    Returns:
        The written path.
    """
    # Figure + Agg canvas directly: no pyplot global state, no backend switching.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise DataError(_SRC, "curves", "no curves to plot")
    path = Path(path)
    fig = Figure(figsize=(6.4, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, values in curves.items():
        x, y = ced_curve(values, max_error=max_error)
        e = _errors(values, max_error)
        mean_pct = 100.0 * float(np.mean(e))
        ax.step(
            100.0 * x,
            y,
            where="post",
            linewidth=1.8,
            label=f"{label} (AUC {ced_auc(values, max_error):.3f}, mean NME {mean_pct:.2f}%)",
        )
    ax.set_xlim(0.0, 100.0 * max_error)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Fraction of images")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Path(path).suffix.lstrip(".") or "png"
    # A PDF without its creation date: the same curves give the same bytes.
    fig.savefig(path, format=fmt, metadata={"CreationDate": None} if fmt == "pdf" else None)
    return path
