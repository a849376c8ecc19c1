"""PRNet's UV masks (face region, loss weights, key-point pixels) derived from a morphable model.

UV pixel coordinates (docs/conventions.md section 5): ``x = u * (W-1)`` (column, right),
``y = (H-1) - v * (H-1)`` (row, down); pixel (x, y) has its centre at the integer point.

How PRNet's own files were made, as measured against the real BFM topology
(``fixtures/prnet_uv``), and the rules this module uses:

* ``uv_kpt_ind.txt`` = the rounded UV pixel of each key vertex (exact).
* ``uv_weight_mask.png`` is the UV mesh drawn with flat shading: every vertex carries a weight,
  16 for the 68 key vertices, 4 for nose/eyes/mouth vertices (``segbin`` rows 0-2), 3 otherwise;
  a pixel gets the mean of its triangle's three vertex weights (the triangle that covers it
  first in ``tri`` + ``tri_mouth``, face3d's rule with its 2-pixel border); the 68 key-point
  pixels are then set to 16; the PNG byte is ``min(255, floor(16 * weight))``. So it holds
  48 / 64 / 255 plus blends along region edges (53, 58) and around key points (117, 122, 128).
  This reproduces every byte of the PNG inside PRNet's face mask (``mode="flat"``). Outside the
  face PRNet stores 48 (row 0 holds 0); the paper's weight there is 0, which is what we use.
* ``uv_face_mask.png`` is not a function of the mesh (its edge cuts triangles and follows no 3D
  plane or sphere); it is a convex region: the UV square less a 5-pixel border, cut off below
  the jaw. Our rule: the inner square intersected with the convex hull of its top edge, the
  points on its sides at the heights of jaw key points 0 and 16 (plus the margin), and disks of
  radius 6 px around the 17 jaw key points (0-16). Face IoU with PRNet's mask: 0.980.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import ConvexHull

from uvgen.formats.errors import DataError, read_whole_file
from uvgen.raster import FACE3D_BORDER, Rasterization, rasterize
from uvgen.weight_classes import (
    CLASS_NAMES,
    EYE_NOSE_MOUTH,
    FACE,
    KEYPOINT,
    OUTSIDE,
    PAPER_WEIGHTS,
    weight_classes,
)

UV_SIZE = 256

# Paper's loss weights (docs/conventions.md section 5; defined in uvgen.weight_classes).
KEYPOINT_WEIGHT = PAPER_WEIGHTS[KEYPOINT]
REGION_WEIGHT = PAPER_WEIGHTS[EYE_NOSE_MOUTH]  # eyes, nose, mouth
FACE_WEIGHT = PAPER_WEIGHTS[FACE]  # rest of the face
OUTSIDE_WEIGHT = PAPER_WEIGHTS[OUTSIDE]

# PRNet's PNG byte = min(255, floor(PNG_SCALE * weight)).
PNG_SCALE = 16.0

# Face-mask rule, in pixels of a 256-pixel map (scaled by size / 256 for other sizes).
FACE_BORDER_PX = 5.0
JAW_MARGIN_PX = 6.0
JAW_KEYPOINTS = np.arange(17)  # iBUG-68 points 0-16: the jaw line
_DISK_VERTICES = 64

PRNET_FILES = {
    "face_mask": "uv_face_mask.png",
    "weight_mask": "uv_weight_mask.png",
    "kpt_uv": "uv_kpt_ind.txt",
    "face_ind": "face_ind.txt",
}

# Every byte PRNet's weight PNG holds, decoded to the mean vertex weight it was made from
# (``floor(16 * mean)``: 53 = (4+3+3)/3, 58 = (4+4+3)/3, 117 = (16+3+3)/3, 122 = (16+4+3)/3,
# 128 = (16+4+4)/3). Other bytes decode as byte / 16.
_PNG_EXACT = {
    0: 0.0,
    48: 3.0,
    53: 10 / 3,
    58: 11 / 3,
    64: 4.0,
    117: 22 / 3,
    122: 23 / 3,
    128: 8.0,
    255: 16.0,
}
# The same bytes as weight classes: blends take the majority of their vertices; for blends with a
# key vertex the two other vertices decide and a 3/4 tie (122) goes to 4.
_PNG_CLASS = {0: 0.0, 48: 3.0, 53: 3.0, 58: 4.0, 64: 4.0, 117: 3.0, 122: 4.0, 128: 4.0, 255: 16.0}


@dataclass(frozen=True, eq=False)
class UVMasks:
    """The UV masks used for training and decoding (row = y down, column = x right).

    Attributes:
        face: (H, W) bool, the face region (what is decoded as the dense face).
        weights: (H, W) float32 per-pixel loss weights (16 / 4 / 3 / 0, or blends in flat mode).
        kpt_uv: (2, 68) int64 key-point UV pixels: row 0 = column (x), row 1 = row (y).
        face_ind: (K,) int64 flat indices ``y * W + x`` of the face pixels, ascending.
    """

    face: np.ndarray
    weights: np.ndarray
    kpt_uv: np.ndarray
    face_ind: np.ndarray

    @property
    def size(self) -> int:
        return int(self.face.shape[0])

    @property
    def weight_class(self) -> np.ndarray:
        """(H, W) uint8 weight-class codes (uvgen.weight_classes) of ``weights``: exact for the
        class-mode weights (0 / 3 / 4 / 16) UV files are built from; blends snap to the nearest."""
        return weight_classes(self.weights)


# ---------------------------------------------------------------------------------------------
# Model access (MorphableModel, formats.bfm.Topology or any object with the same attributes)
# ---------------------------------------------------------------------------------------------


def _uv_of(model_or_uv: Any) -> np.ndarray:
    uv = getattr(model_or_uv, "uv", model_or_uv)
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv must be (n, 2), got shape {uv.shape}")
    return uv


def _kpt_of(model_or_uv: Any, kpt_ind: np.ndarray | None) -> np.ndarray:
    if kpt_ind is None:
        kpt_ind = getattr(model_or_uv, "kpt_ind", None)
        if kpt_ind is None:
            raise ValueError("kpt_ind is required when a bare uv array is given")
    kpt = np.asarray(kpt_ind).reshape(-1)
    if not np.issubdtype(kpt.dtype, np.integer):
        raise ValueError(f"kpt_ind must be integer vertex indices, got {kpt.dtype}")
    return kpt.astype(np.int64)


def _triangles_of(model: Any) -> np.ndarray:
    tri = getattr(model, "full_triangles", None)
    if tri is None:
        tri = np.vstack([model.tri, model.tri_mouth])
    return np.asarray(tri, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------------------------


def uv_pixel_coords(uv: np.ndarray, size: int = UV_SIZE) -> np.ndarray:
    """(n, 2) float64 UV pixel coordinates: ``u * (size-1)`` (x, right), ``(size-1) - v * (size-1)``
    (y, down)."""
    uv = _uv_of(uv)
    s = float(size - 1)
    return np.stack([uv[:, 0] * s, s - uv[:, 1] * s], axis=1)


def keypoint_uv_pixels(
    model_or_uv: Any, kpt_ind: np.ndarray | None = None, size: int = UV_SIZE
) -> np.ndarray:
    """(2, k) int64 rounded UV pixels of the key vertices: row 0 = column (x), row 1 = row (y).

    ``model_or_uv`` is a model (its ``uv`` and, when ``kpt_ind`` is None, its ``kpt_ind``) or an
    (n, 2) uv array. Rounding is numpy's (half to even). On the real topology this equals
    PRNet's ``uv_kpt_ind.txt``.
    """
    uv = _uv_of(model_or_uv)
    kpt = _kpt_of(model_or_uv, kpt_ind)
    return np.rint(uv_pixel_coords(uv[kpt], size)).T.astype(np.int64)


def uv_rasterization(model: Any, size: int = UV_SIZE, precision: str = "float32") -> Rasterization:
    """The model's full triangle list (``tri`` + ``tri_mouth``) drawn in UV pixel space: earliest
    triangle wins, face3d's 2-pixel border counts as covered (as for the position map).

    ``precision`` "float32" (default) is face3d's arithmetic (its C++ rasteriser works in float,
    and PRNet's released model was trained on its maps); "float64" is the exact-arithmetic
    reference. On the real BFM topology they differ at one pixel: UV (138, 137), where mouth
    triangle 105917's barycentric denominator is exactly 0 in float32, so face3d counts the pixel
    covered by it with weights (1, 0, 0), while float64 gives it to triangle 105919."""
    return rasterize(
        uv_pixel_coords(model.uv, size),
        _triangles_of(model),
        size,
        size,
        border=FACE3D_BORDER,
        precision=precision,
    )


# ---------------------------------------------------------------------------------------------
# Face mask
# ---------------------------------------------------------------------------------------------


def face_mask(
    model_or_uv: Any,
    kpt_ind: np.ndarray | None = None,
    size: int = UV_SIZE,
    border: float | None = None,
    jaw_margin: float | None = None,
) -> np.ndarray:
    """(size, size) bool face region derived from the jaw key points' UV positions.

    A pixel is in the face when it lies in the inner square ``border <= x, y <= size-1-border``
    and in the convex hull of: the square's top corners, the points on its left/right sides at
    the heights of jaw key points 0 / 16 plus ``jaw_margin``, and disks of radius ``jaw_margin``
    around the (unrounded) UV pixels of jaw key points 0-16. Defaults (5 and 6 px at 256,
    scaled by size / 256) were chosen by measurement against PRNet's ``uv_face_mask.png``.
    """
    uv = _uv_of(model_or_uv)
    kpt = _kpt_of(model_or_uv, kpt_ind)
    if len(kpt) < len(JAW_KEYPOINTS):
        raise ValueError(f"need the 68 key points (jaw = 0-16), got {len(kpt)}")
    scale = size / UV_SIZE
    b = FACE_BORDER_PX * scale if border is None else float(border)
    m = JAW_MARGIN_PX * scale if jaw_margin is None else float(jaw_margin)
    lo, hi = b, (size - 1) - b

    jaw = uv_pixel_coords(uv[kpt[JAW_KEYPOINTS]], size)
    angles = np.linspace(0.0, 2.0 * np.pi, _DISK_VERTICES, endpoint=False)
    disk = m * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    sides = np.array([[lo, lo], [hi, lo], [lo, jaw[0, 1] + m], [hi, jaw[-1, 1] + m]])
    hull = ConvexHull(np.vstack([(jaw[:, None, :] + disk[None]).reshape(-1, 2), sides]))

    ys, xs = np.mgrid[0:size, 0:size]
    pix = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    # hull.equations: outward normal (a, b) and offset c, inside where a*x + b*y + c <= 0.
    inside = np.all(pix @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-9, axis=1)
    square = (pix >= lo).all(axis=1) & (pix <= hi).all(axis=1)
    return (inside & square).reshape(size, size)


# ---------------------------------------------------------------------------------------------
# Weight mask
# ---------------------------------------------------------------------------------------------


def vertex_weights(model: Any) -> np.ndarray:
    """(n,) float64 per-vertex weight: 16 key vertex, 4 nose/eyes/mouth (segbin rows 0-2), else
    3."""
    segbin = np.asarray(model.segbin)
    w = np.where(segbin[:3].astype(bool).any(axis=0), REGION_WEIGHT, FACE_WEIGHT)
    w[_kpt_of(model, None)] = KEYPOINT_WEIGHT
    return w


def weight_mask(
    model: Any,
    size: int = UV_SIZE,
    face: np.ndarray | None = None,
    mode: str = "classes",
    raster: Rasterization | None = None,
) -> np.ndarray:
    """(size, size) float32 loss weights from the model's segmentation and key points.

    Each UV pixel takes the triangle that covers it (``raster``, default :func:`uv_rasterization`).
    ``mode="classes"``: 4 when at least 2 of the triangle's 3 vertices are nose/eyes/mouth
    vertices (segbin rows 0-2), else 3. ``mode="flat"``: the mean of the 3 vertex weights of
    :func:`vertex_weights` (PRNet's rendering; gives blends such as 11/3 or 22/3). In both modes
    the 68 key-point pixels are then 16; pixels outside ``face`` (default :func:`face_mask`) or
    covered by no triangle are 0. Key-point pixels are 16 even outside the face.
    """
    if mode not in ("classes", "flat"):
        raise ValueError(f"mode must be 'classes' or 'flat', got {mode!r}")
    if raster is None:
        raster = uv_rasterization(model, size)
    if raster.shape != (size, size):
        raise ValueError(f"raster is {raster.shape}, expected ({size}, {size})")
    if face is None:
        face = face_mask(model, size=size)
    face = np.asarray(face, dtype=bool)
    if face.shape != (size, size):
        raise ValueError(f"face mask is {face.shape}, expected ({size}, {size})")

    vw = vertex_weights(model)
    tri_w = vw[raster.vertex_ids]  # (P, 3)
    if mode == "flat":
        values = tri_w.mean(axis=1)
    else:
        region = np.asarray(model.segbin)[:3].astype(bool).any(axis=0)
        values = np.where(region[raster.vertex_ids].sum(axis=1) >= 2, REGION_WEIGHT, FACE_WEIGHT)
    out = np.zeros(size * size, dtype=np.float64)
    out[raster.pixels] = values
    out = np.where(face.ravel(), out, OUTSIDE_WEIGHT).reshape(size, size)
    kx, ky = keypoint_uv_pixels(model, size=size)
    ok = (kx >= 0) & (kx < size) & (ky >= 0) & (ky < size)
    out[ky[ok], kx[ok]] = KEYPOINT_WEIGHT
    return out.astype(np.float32)


def weights_to_png(weights: np.ndarray) -> np.ndarray:
    """uint8 image in PRNet's encoding: ``min(255, floor(16 * weight))`` (16 -> 255, 4 -> 64,
    3 -> 48)."""
    w = np.asarray(weights, dtype=np.float64)
    return np.clip(np.floor(PNG_SCALE * w + 1e-6), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# PRNet's files
# ---------------------------------------------------------------------------------------------


def _read_gray_png(path: str | Path, size: int = UV_SIZE) -> np.ndarray:
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "missing file")
    try:
        with Image.open(path) as im:
            image = np.asarray(im if im.mode == "L" else im.convert("L"))
    except Exception as exc:
        raise DataError(path, None, f"cannot read image ({type(exc).__name__}: {exc})") from exc
    if image.shape != (size, size):
        raise DataError(path, None, f"expected a {size}x{size} image, got shape {image.shape}")
    return image.astype(np.uint8)


def load_prnet_face_mask(png_path: str | Path) -> np.ndarray:
    """(256, 256) bool: PRNet's ``uv_face_mask.png`` (face pixels are non-zero, 255)."""
    return _read_gray_png(png_path) > 0


def load_prnet_weight_mask(
    png_path: str | Path,
    face_mask: np.ndarray | str | Path | None = None,
    mode: str = "classes",
    outside: str = "zero",
) -> np.ndarray:
    """(256, 256) float32 weights from PRNet's ``uv_weight_mask.png``.

    ``mode="classes"``: 255 -> 16, 64 -> 4, 48 -> 3, and the blended bytes to the class of the
    majority of their vertices (53 -> 3, 58 -> 4, 117 -> 3, 128 -> 4, 122 -> 4).
    ``mode="exact"``: the mean vertex weight each byte encodes (58 -> 11/3, 128 -> 8, ...);
    unknown bytes -> byte / 16.
    ``outside="zero"`` (default, the paper's weight 0 outside the face): pixels outside the face
    mask become 0; the face mask is ``face_mask`` (bool array or PNG path), default PRNet's
    ``uv_face_mask.png`` beside ``png_path``. ``outside="keep"``: PRNet's bytes as they are (48,
    i.e. 3, outside the face; 0 on row 0), as a loss that uses the PNG unmasked would see them.
    """
    if mode not in ("classes", "exact"):
        raise ValueError(f"mode must be 'classes' or 'exact', got {mode!r}")
    if outside not in ("zero", "keep"):
        raise ValueError(f"outside must be 'zero' or 'keep', got {outside!r}")
    png_path = Path(png_path)
    image = _read_gray_png(png_path)
    table = _PNG_CLASS if mode == "classes" else _PNG_EXACT
    lut = np.arange(256, dtype=np.float64) / PNG_SCALE
    if mode == "classes":  # unknown bytes: nearest class level
        lut = np.asarray(PAPER_WEIGHTS)[weight_classes(lut)]
    for byte, value in table.items():
        lut[byte] = value
    weights = lut[image]
    if outside == "zero":
        if face_mask is None:
            face_mask = png_path.with_name(PRNET_FILES["face_mask"])
        if not isinstance(face_mask, np.ndarray):
            face_mask = load_prnet_face_mask(face_mask)
        face = np.asarray(face_mask, dtype=bool)
        if face.shape != image.shape:
            raise ValueError(f"face mask is {face.shape}, expected {image.shape}")
        weights = np.where(face, weights, OUTSIDE_WEIGHT)
    return weights.astype(np.float32)


def _read_numbers(path: Path, ndmin: int, what: str) -> np.ndarray:
    """A numeric text file of PRNet's (``np.loadtxt``, at least ``ndmin`` dimensions); DataError
    naming ``path`` when it is missing or not numeric (``what``: 'table' or 'list')."""
    read = partial(np.loadtxt, ndmin=ndmin)
    return read_whole_file(path, read, f"numeric text {what}", ValueError)


def load_prnet_kpt_uv(path: str | Path) -> np.ndarray:
    """(2, 68) int64 from PRNet's ``uv_kpt_ind.txt`` (row 0 = column, row 1 = row)."""
    path = Path(path)
    values = _read_numbers(path, 2, "table")
    if values.shape != (2, 68):
        raise DataError(path, None, f"expected shape (2, 68), got {values.shape}")
    if not np.all(values == np.round(values)):
        raise DataError(path, None, "key-point pixels must be whole numbers")
    return values.astype(np.int64)


def load_prnet_face_ind(path: str | Path) -> np.ndarray:
    """(K,) int64 from PRNet's ``face_ind.txt`` (flat row-major indices of the face pixels)."""
    path = Path(path)
    values = _read_numbers(path, 1, "list")
    if values.ndim != 1 or not np.all(values == np.round(values)):
        raise DataError(path, None, "expected one whole number per line")
    return values.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Bundles and comparison
# ---------------------------------------------------------------------------------------------


def build_uv_masks(
    model: Any = None,
    size: int = UV_SIZE,
    source: str = "model",
    prnet_dir: str | Path | None = None,
    weight_mode: str = "classes",
    raster: Rasterization | None = None,
) -> UVMasks:
    """The UV masks from the model (``source="model"``) or from PRNet's files (``"prnet"``).

    ``"model"``: :func:`face_mask`, :func:`weight_mask` (``weight_mode`` "classes" or "flat"),
    :func:`keypoint_uv_pixels`. ``"prnet"``: ``uv_face_mask.png``, ``uv_weight_mask.png``
    (``weight_mode`` "classes" or "exact", 0 outside the face) and ``uv_kpt_ind.txt`` from
    ``prnet_dir``; size must be 256 and ``model`` is not needed. ``face_ind`` is the face mask's
    flat indices in both cases.
    """
    if source == "model":
        if model is None:
            raise ValueError("source='model' needs a model")
        face = face_mask(model, size=size)
        weights = weight_mask(model, size=size, face=face, mode=weight_mode, raster=raster)
        kpt_uv = keypoint_uv_pixels(model, size=size)
    elif source == "prnet":
        if prnet_dir is None:
            raise ValueError("source='prnet' needs prnet_dir")
        if size != UV_SIZE:
            raise ValueError(f"PRNet's masks are {UV_SIZE}x{UV_SIZE}, size={size} asked")
        prnet_dir = Path(prnet_dir)
        face = load_prnet_face_mask(prnet_dir / PRNET_FILES["face_mask"])
        weights = load_prnet_weight_mask(
            prnet_dir / PRNET_FILES["weight_mask"], face_mask=face, mode=weight_mode
        )
        kpt_uv = load_prnet_kpt_uv(prnet_dir / PRNET_FILES["kpt_uv"])
    else:
        raise ValueError(f"source must be 'model' or 'prnet', got {source!r}")
    return UVMasks(
        face=face, weights=weights, kpt_uv=kpt_uv, face_ind=np.flatnonzero(face).astype(np.int64)
    )


def _overlap(a: np.ndarray, b: np.ndarray) -> dict:
    inter = int((a & b).sum())
    union = int((a | b).sum())
    na, nb = int(a.sum()), int(b.sum())
    return {
        "iou": inter / union if union else 1.0,
        "precision": inter / na if na else 1.0,
        "recall": inter / nb if nb else 1.0,
        "ours": na,
        "theirs": nb,
        "intersection": inter,
    }


def mask_agreement(ours: UVMasks, theirs: UVMasks) -> dict:
    """How far two sets of masks agree (e.g. ours from the model vs PRNet's PNGs).

    Returns a dict:
      ``face``: iou, precision (of ours), recall (of theirs), pixel counts.
      ``weights``: ``agreement`` = fraction of all pixels whose weight class (nearest of 0/3/4/16,
        :func:`weight_classes`) matches; ``agreement_in_face`` = the same over pixels in both
        face masks; ``confusion`` = (4, 4) counts, rows ours, columns theirs, in
        :data:`CLASS_NAMES` order; ``classes`` = per class name, its iou/precision/recall/counts.
      ``keypoints``: ``equal`` (number of identical key-point pixels), ``max_abs_diff`` (pixels).
    """
    if ours.face.shape != theirs.face.shape:
        raise ValueError(f"mask sizes differ: {ours.face.shape} vs {theirs.face.shape}")
    co, ct = weight_classes(ours.weights), weight_classes(theirs.weights)
    n = len(CLASS_NAMES)
    confusion = np.bincount((co.astype(np.int64) * n + ct).ravel(), minlength=n * n).reshape(n, n)
    both = ours.face & theirs.face
    classes = {name: _overlap(co == k, ct == k) for k, name in enumerate(CLASS_NAMES)}
    kd = np.abs(np.asarray(ours.kpt_uv) - np.asarray(theirs.kpt_uv))
    return {
        "face": _overlap(ours.face, theirs.face),
        "weights": {
            "agreement": float((co == ct).mean()),
            "agreement_in_face": float((co == ct)[both].mean()) if both.any() else 1.0,
            "confusion": confusion,
            "classes": classes,
        },
        "keypoints": {
            "equal": int(np.all(kd == 0, axis=0).sum()),
            "max_abs_diff": int(kd.max()) if kd.size else 0,
        },
    }


def format_agreement(report: dict) -> str:
    """A few lines of text summarising :func:`mask_agreement`'s dict."""
    f = report["face"]
    w = report["weights"]
    lines = [
        f"face: IoU {f['iou']:.4f}  precision {f['precision']:.4f}  recall {f['recall']:.4f}"
        f"  (ours {f['ours']}, theirs {f['theirs']})",
        f"weight classes: agreement {w['agreement']:.4f} (all pixels), "
        f"{w['agreement_in_face']:.4f} (both faces)",
    ]
    for name, c in w["classes"].items():
        lines.append(
            f"  {name:8s}: IoU {c['iou']:.4f}  precision {c['precision']:.4f}  "
            f"recall {c['recall']:.4f}"
            f"  (ours {c['ours']}, theirs {c['theirs']})"
        )
    lines.append("  confusion (rows ours, cols theirs; " + "/".join(CLASS_NAMES) + "):")
    lines += ["    " + " ".join(f"{v:7d}" for v in row) for row in w["confusion"]]
    k = report["keypoints"]
    lines.append(f"keypoints: {k['equal']} equal, max |diff| {k['max_abs_diff']} px")
    return "\n".join(lines)
