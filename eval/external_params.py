"""3DDFA-style 62-number parameters of other methods (:mod:`eval.external`): the basis file and
the decoding into points in original-image pixels.

Basis file (``.npz``, 3DDFA's layout; vertex arrays interleave x1, y1, z1, x2, ...):

* ``u`` (3n, 1): mean shape (+ mean expression); ``w_shp`` (3n, 40); ``w_exp`` (3n, 10);
* ``param_mean``, ``param_std`` (62,): the whitening of the parameters;
* ``kpt_ind`` (68,): 0-based vertex index of each landmark;
* optional: ``crop_size`` (scalar, default 120), ``flip_y`` (bool, default True), ``uv`` (n, 2) UV
  coordinates in [0, 1] and ``tri`` (M, 3) 0-based triangles (for the dense correspondence).

Decoding (3DDFA's ``reconstruct_vertex`` and ``_predict_vertices``): ``p = params * std + mean``;
``P = p[:12].reshape(3, 4)`` (row-major: s*R | t); ``alpha_shp = p[12:52]``, ``alpha_exp =
p[52:62]``; model vertices ``V = (u + w_shp @ alpha_shp + w_exp @ alpha_exp)`` as (n, 3);
crop-space points ``X = V @ P[:, :3].T + P[:, 3]``; with ``flip_y``, ``y = crop_size + 1 - y``; then
with the crop box (sx, sy, ex, ey) in original-image pixels: ``x = x * (ex - sx) / crop_size + sx``,
``y = y * (ey - sy) / crop_size + sy``, ``z = z * (sx_scale + sy_scale) / 2``. Without crop boxes
the crop IS the image (scale 1, offset 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.external_readers import (
    array_and_names,
    check_count,
    finite_rows,
    load_npy,
    load_npz,
    optional_path,
)
from eval.predictions import N_LANDMARKS
from uvgen.formats.errors import DataError

N_PARAMS = 62
N_SHP, N_EXP = 40, 10
DEFAULT_CROP_SIZE = 120.0


# ----------------------------------------------------------------------------------------------
# 3DDFA-style parameters


@dataclass(frozen=True, eq=False)
class Basis:
    """A 3DDFA-style linear basis (see the module docstring); arrays as stored, checked."""

    u: np.ndarray  # (3n,) float64
    w_shp: np.ndarray  # (3n, 40)
    w_exp: np.ndarray  # (3n, 10)
    param_mean: np.ndarray  # (62,)
    param_std: np.ndarray  # (62,)
    kpt_ind: np.ndarray  # (68,) int64, 0-based
    crop_size: float = DEFAULT_CROP_SIZE
    flip_y: bool = True
    uv_coords: np.ndarray | None = None  # (n, 2) per-vertex UV coordinates in [0, 1] (npz key 'uv')
    tri: np.ndarray | None = None  # (M, 3) 0-based

    @property
    def n_vertices(self) -> int:
        return self.u.size // 3


def load_basis(path: str | Path) -> Basis:
    """Read and check a basis ``.npz`` (keys in the module docstring)."""
    path = Path(path)
    z = load_npz(path)

    def need(key: str, shape: tuple[int | None, ...]) -> np.ndarray:
        if key not in z:
            raise DataError(path, key, "missing array")
        a = np.asarray(z[key])
        if a.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
            raise DataError(
                path,
                key,
                f"expected shape {tuple('n' if s is None else s for s in shape)}, got {a.shape}",
            )
        if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
            raise DataError(path, key, "must be finite numbers")
        return a

    u = need("u", (None, 1)) if np.ndim(z.get("u")) == 2 else need("u", (None,))
    n3 = u.shape[0]
    if n3 % 3 or n3 == 0:
        raise DataError(path, "u", f"length {n3} is not a positive multiple of 3")
    w_shp = need("w_shp", (n3, N_SHP)).astype(np.float64)
    w_exp = need("w_exp", (n3, N_EXP)).astype(np.float64)
    mean = (
        need("param_mean", (N_PARAMS,)).astype(np.float64)
        if np.ndim(z.get("param_mean")) == 1
        else need("param_mean", (1, N_PARAMS)).astype(np.float64).ravel()
    )
    std = (
        need("param_std", (N_PARAMS,)).astype(np.float64)
        if np.ndim(z.get("param_std")) == 1
        else need("param_std", (1, N_PARAMS)).astype(np.float64).ravel()
    )
    kpt = need("kpt_ind", (N_LANDMARKS,))
    if not np.issubdtype(kpt.dtype, np.integer) or kpt.min() < 0 or kpt.max() >= n3 // 3:
        raise DataError(
            path, "kpt_ind", f"expected 0-based integer vertex indices in [0, {n3 // 3})"
        )
    crop = float(z["crop_size"]) if "crop_size" in z else DEFAULT_CROP_SIZE
    if not (np.isfinite(crop) and crop > 0):
        raise DataError(path, "crop_size", f"must be > 0, got {crop}")
    flip = bool(z["flip_y"]) if "flip_y" in z else True
    uv_coords = tri = None
    if ("uv" in z) != ("tri" in z):
        raise DataError(path, "uv" if "uv" not in z else "tri", "uv and tri go together")
    if "uv" in z:
        uv_coords = need("uv", (n3 // 3, 2)).astype(np.float64)
        tri = need("tri", (None, 3))
        if not np.issubdtype(tri.dtype, np.integer) or tri.min() < 0 or tri.max() >= n3 // 3:
            raise DataError(path, "tri", "expected 0-based integer vertex indices")
        tri = tri.astype(np.int64)
    return Basis(
        u.astype(np.float64).ravel(),
        w_shp,
        w_exp,
        mean,
        std,
        kpt.astype(np.int64),
        crop,
        flip,
        uv_coords,
        tri,
    )


def decode_params(
    params: np.ndarray,
    basis: Basis,
    roi_boxes: np.ndarray | None = None,
    vertex_index: np.ndarray | None = None,
) -> np.ndarray:
    """3DDFA-style whitened parameters (N, 62) -> vertices (N, n or len(vertex_index), 3) float64
    in original-image pixels (module docstring). ``roi_boxes`` (N, 4) = (sx, sy, ex, ey) pixels;
    None = the crop is the image. ``vertex_index``: decode only these vertices (e.g. kpt_ind)."""
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != N_PARAMS:
        raise ValueError(f"params must be (N, {N_PARAMS}), got {p.shape}")
    p = p * basis.param_std + basis.param_mean
    cam = p[:, :12].reshape(-1, 3, 4)
    rows = np.arange(basis.u.size).reshape(-1, 3)
    if vertex_index is not None:
        rows = rows[np.asarray(vertex_index, dtype=np.int64)]
    r = rows.ravel()
    model = (
        basis.u[r][None] + p[:, 12:52] @ basis.w_shp[r].T + p[:, 52:62] @ basis.w_exp[r].T
    )  # (N, 3m)
    v = model.reshape(len(p), -1, 3)
    pts = np.einsum("nij,nkj->nki", cam[:, :, :3], v) + cam[:, None, :, 3]
    if basis.flip_y:
        pts[..., 1] = basis.crop_size + 1.0 - pts[..., 1]
    if roi_boxes is not None:
        roi = np.asarray(roi_boxes, dtype=np.float64)
        if roi.shape != (len(p), 4):
            raise ValueError(f"roi_boxes must be ({len(p)}, 4), got {roi.shape}")
        sx = (roi[:, 2] - roi[:, 0]) / basis.crop_size
        sy = (roi[:, 3] - roi[:, 1]) / basis.crop_size
        pts[..., 0] = pts[..., 0] * sx[:, None] + roi[:, 0, None]
        pts[..., 1] = pts[..., 1] * sy[:, None] + roi[:, 1, None]
        pts[..., 2] *= ((sx + sy) / 2.0)[:, None]
    return pts


def read_params(
    path: str | Path, names_path: str | Path | None = None, roi_path: str | Path | None = None
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(names, params (N, 62), roi_boxes (N, 4) or None) from a .npy/.npz (module docstring)."""
    path = Path(path)
    arr, names, key = array_and_names(path, ("params", "param"), optional_path(names_path))
    a = np.asarray(arr)
    if a.ndim != 2 or a.shape[1] != N_PARAMS or not np.issubdtype(a.dtype, np.number):
        raise DataError(path, key, f"expected numeric (N, {N_PARAMS}), got {a.shape} {a.dtype}")
    check_count(path, key, a, names)
    a = finite_rows(a.astype(np.float64)[:, None, :], path, key)[:, 0]
    roi = None
    if roi_path is not None:
        roi_path = Path(roi_path)
        roi, src, field = load_npy(roi_path, "roi_boxes"), roi_path, "roi_boxes"
    elif path.suffix.lower() == ".npz":
        z = load_npz(path)
        roi, src, field = z.get("roi_boxes"), path, "roi_boxes"
    if roi is not None:
        roi = np.asarray(roi, dtype=np.float64)
        if roi.shape != (len(a), 4) or not np.all(np.isfinite(roi)):
            raise DataError(
                src, field, f"expected finite ({len(a)}, 4) boxes (sx, sy, ex, ey), got {roi.shape}"
            )
        if np.any(roi[:, 2] <= roi[:, 0]) or np.any(roi[:, 3] <= roi[:, 1]):
            raise DataError(src, field, "each box needs ex > sx and ey > sy")
    return names, a, roi


def params_pose(params: np.ndarray, basis: Basis) -> np.ndarray:
    """Head pose (N, 3) (pitch, yaw, roll) degrees of 3DDFA-style parameters (N, 62): the nearest
    rotation (SVD) to the camera's ``P[:, :3]`` (s * R, model to crop space with y up before the
    flip), in 300W-LP's angle convention (:func:`uvgen.geometry.rotation_angles`)."""
    from eval.pose import angles_of_rotations

    p = np.asarray(params, dtype=np.float64) * basis.param_std + basis.param_mean
    m = p[:, :12].reshape(-1, 3, 4)[:, :, :3]
    u, _, vt = np.linalg.svd(m)
    rot = u @ vt
    flip = np.linalg.det(rot) < 0  # a reflected camera: take the nearest proper rotation
    u[flip, :, 2] *= -1
    rot = u @ vt
    return angles_of_rotations(rot)
