"""Per-image error metrics of the AFLW2000-3D protocol (docs/conventions.md section 6), pure numpy.

Points are rows: an image's point set is ``(K, D)`` with columns x, y[, z] in original-image
pixels (x right, y down, z depth); a batch of images is ``(B, K, D)``. Prediction and ground truth
must list the same K points in the same order (68 landmarks, or the dense face vertices).

NME (normalised mean error) of one image = mean over its K points of the Euclidean error, divided
by the normaliser ``sqrt(w * h)`` of the ground truth's (x, y) bounding box, exactly as 3DDFA's
benchmark computes it. The result is a unitless fraction (multiply by 100 for the % of the
tables). The same functions serve the 68 landmarks and the dense vertices: by default the box is
that of whichever gt points are passed (for dense NME, the dense gt points' 2D box); pass
``normaliser=`` explicitly to use another, e.g. ``bbox_size(gt68)`` for dense errors normalised
by the 68 landmarks' box.

Bad input raises :class:`uvgen.formats.errors.DataError`; in-memory arrays are named ``<array>``
with the argument name as the field.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from uvgen.formats.errors import DataError
from uvgen.geometry import umeyama

YAW_BIN_LABELS: tuple[str, str, str] = ("0-30", "30-60", "60-90")
"""Labels of the three |yaw| bins [0, 30], (30, 60], (60, inf) in degrees (the last holds
|yaw| > 90 too)."""

YAW_BIN_EDGES_DEG: tuple[float, float] = (30.0, 60.0)
"""Upper (inclusive) edges of the first two bins, degrees."""

_SRC = "<array>"


# --------------------------------------------------------------------------- validation helpers
def _points(a: ArrayLike, field: str, ndim: int, min_dim: int = 2) -> np.ndarray:
    """``a`` as float64 of ``ndim`` dims whose last axis is 2 or 3 coordinates (min_dim..3)."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != ndim:
        layout = "(K, D)" if ndim == 2 else "(B, K, D)"
        raise DataError(_SRC, field, f"expected a {layout} array of points, got shape {arr.shape}")
    if not (min_dim <= arr.shape[-1] <= 3):
        raise DataError(
            _SRC,
            field,
            f"last axis must hold {min_dim}..3 coordinates (points are rows), got shape "
            f"{arr.shape}",
        )
    if arr.shape[-2] == 0:
        raise DataError(_SRC, field, "no points")
    if not np.all(np.isfinite(arr)):
        raise DataError(_SRC, field, "contains non-finite values")
    return arr


def _pair(pred: ArrayLike, gt: ArrayLike, ndim: int, min_dim: int) -> tuple[np.ndarray, np.ndarray]:
    p = _points(pred, "pred", ndim, min_dim)
    g = _points(gt, "gt", ndim, min_dim)
    if p.shape[:-1] != g.shape[:-1]:
        raise DataError(
            _SRC, "pred", f"shape {p.shape} does not match gt shape {g.shape} (same points needed)"
        )
    return p, g


def _normaliser(norm: ArrayLike | None, gt: np.ndarray) -> np.ndarray:
    """Normaliser per image: given (scalar or (B,)) or the gt 2D box's sqrt(w*h)."""
    if norm is None:
        out = _bbox_size(gt)
    else:
        try:
            out = np.broadcast_to(np.asarray(norm, dtype=np.float64), gt.shape[:-2]).copy()
        except ValueError as exc:
            raise DataError(_SRC, "normaliser", f"one value per image needed: {exc}") from exc
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise DataError(
            _SRC, "normaliser", f"must be finite and > 0 (degenerate gt box?), got {out}"
        )
    return out


def _bbox_size(points: np.ndarray) -> np.ndarray:
    span = points[..., :2].max(axis=-2) - points[..., :2].min(axis=-2)
    return np.sqrt(span[..., 0] * span[..., 1])


# --------------------------------------------------------------------------- normaliser
def bbox_size(points: ArrayLike) -> float | np.ndarray:
    """``sqrt(w * h)`` of the (x, y) bounding box of ``points``: (K, D) -> float, (B, K, D) -> (B,).

    Pixels. This is the NME normaliser (3DDFA's ``llength``); z is ignored.
    """
    arr = np.asarray(points, dtype=np.float64)
    pts = _points(arr, "points", 3 if arr.ndim == 3 else 2)
    out = _bbox_size(pts)
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- NME
def _nme(p: np.ndarray, g: np.ndarray, norm: ArrayLike | None, use_z: bool) -> np.ndarray:
    n = _normaliser(norm, g)
    if use_z:
        p = p - p[..., 2:3].min(axis=-2, keepdims=True) * np.array([0.0, 0.0, 1.0])
        g = g - g[..., 2:3].min(axis=-2, keepdims=True) * np.array([0.0, 0.0, 1.0])
        d = p - g
    else:
        d = p[..., :2] - g[..., :2]
    return np.linalg.norm(d, axis=-1).mean(axis=-1) / n


def nme_2d(pred: ArrayLike, gt: ArrayLike, normaliser: float | None = None) -> float:
    """2D NME of one image: mean (x, y) point error / ``sqrt(w*h)`` of gt's (x, y) box.

    Args:
        pred: (K, 2 or 3) predicted points, pixels; z (if any) ignored.
        gt: (K, 2 or 3) ground-truth points, same order.
        normaliser: pixels; default ``bbox_size(gt)``. For dense points the default is the dense gt
            box; pass e.g. ``bbox_size(gt68)`` to normalise by the 68 landmarks' box instead.
    Returns:
        Unitless fraction (x100 for %).
    """
    p, g = _pair(pred, gt, 2, 2)
    return float(_nme(p, g, normaliser, use_z=False))


def nme_3d(pred: ArrayLike, gt: ArrayLike, normaliser: float | None = None) -> float:
    """3D NME of one image: mean (x, y, z) point error / ``sqrt(w*h)`` of gt's 2D (x, y) box.

    Each point set is first shifted along z so that its own minimum z is 0 (the depth origin of a
    prediction is arbitrary). The normaliser is the same 2D box size as for :func:`nme_2d` (depth
    does not enter it).

    Args:
        pred: (K, 3) predicted points, pixels.
        gt: (K, 3) ground-truth points, same order.
        normaliser: pixels; default ``bbox_size(gt)`` (see :func:`nme_2d`).
    """
    p, g = _pair(pred, gt, 2, 3)
    return float(_nme(p, g, normaliser, use_z=True))


def nme_2d_batch(pred: ArrayLike, gt: ArrayLike, normaliser: ArrayLike | None = None) -> np.ndarray:
    """:func:`nme_2d` over a batch: pred, gt (B, K, 2|3) -> (B,). ``normaliser``: scalar or (B,)."""
    p, g = _pair(pred, gt, 3, 2)
    return _nme(p, g, normaliser, use_z=False)


def nme_3d_batch(pred: ArrayLike, gt: ArrayLike, normaliser: ArrayLike | None = None) -> np.ndarray:
    """:func:`nme_3d` over a batch: pred, gt (B, K, 3) -> (B,). ``normaliser``: scalar or (B,)."""
    p, g = _pair(pred, gt, 3, 3)
    return _nme(p, g, normaliser, use_z=True)


# --------------------------------------------------------------------------- rigid alignment
def rigid_transform(
    pred: ArrayLike, gt: ArrayLike, scale: bool = False
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Kabsch/Umeyama) taking ``pred`` onto ``gt``, known correspondences.

    Minimises ``sum ||s * R @ pred_i + t - gt_i||^2`` over proper rotations R (det +1, no
    reflection), translation t, and (if ``scale``) s > 0; otherwise s = 1.

    Args:
        pred, gt: (N, 3) corresponding points, N >= 3.
    Returns:
        (s, R (3, 3), t (3,)) so that ``aligned = s * pred @ R.T + t``.
    """
    p, g = _pair(pred, gt, 2, 3)
    if p.shape[0] < 3:
        raise DataError(_SRC, "pred", f"need at least 3 corresponding points, got {p.shape[0]}")
    if scale and not np.any(p - p.mean(axis=0)):
        raise DataError(_SRC, "pred", "all points coincide; scale is undefined")
    return umeyama(p, g, scale=scale)


def rigid_align(pred: ArrayLike, gt: ArrayLike, scale: bool = False) -> np.ndarray:
    """``pred`` (N, 3) rigidly aligned onto ``gt`` (N, 3) (:func:`rigid_transform`) -> (N, 3)."""
    s, r, t = rigid_transform(pred, gt, scale=scale)
    return s * np.asarray(pred, dtype=np.float64) @ r.T + t


def reconstruction_error(
    pred: ArrayLike, gt: ArrayLike, normaliser: float | None = None, scale: bool = False
) -> float:
    """3D reconstruction error: mean 3D point error after :func:`rigid_align`, / ``normaliser``.

    Args:
        pred, gt: (N, 3) corresponding points (e.g. dense face vertices), pixels.
        normaliser: pixels; default ``bbox_size(gt)`` (the gt points' 2D box).
        scale: also fit a global scale (default False: rotation + translation only).
    Returns:
        Unitless fraction.
    """
    p, g = _pair(pred, gt, 2, 3)
    n = _normaliser(normaliser, g)
    aligned = rigid_align(p, g, scale=scale)
    return float(np.linalg.norm(aligned - g, axis=-1).mean() / n)


# --------------------------------------------------------------------------- yaw bins
def yaw_bin(yaw_deg: ArrayLike) -> int | np.ndarray:
    """Bin index of |yaw| (degrees): 0 for [0, 30], 1 for (30, 60], 2 for (60, inf).

    Edges belong to the lower bin (30 -> 0, 60 -> 1); |yaw| > 90 goes to bin 2. Vectorised: a
    scalar gives an int, an array an int array of the same shape. Labels: :data:`YAW_BIN_LABELS`.
    """
    y = np.abs(np.asarray(yaw_deg, dtype=np.float64))
    if not np.all(np.isfinite(y)):
        raise DataError(_SRC, "yaw", "contains non-finite values")
    out = (y > YAW_BIN_EDGES_DEG[0]).astype(np.int64) + (y > YAW_BIN_EDGES_DEG[1])
    return int(out) if out.ndim == 0 else out
