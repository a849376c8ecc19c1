"""PRNet's ``Data/uv-data`` files from a morphable model (docs/uv_assets.md).

:func:`write_uv_assets` writes, at UV size S (256, the project's size):

* ``uv_kpt_ind.txt``: (2, 68) key-point UV pixels (row 0 column, row 1 row), ``np.savetxt``'s
  ``%.18e`` text as PRNet ships it;
* ``face_ind.txt``: (K,) flat indices ``row * S + column`` of the face pixels, one per line, same
  text format;
* ``triangles.txt``: (T, 3) triangles over the face pixels (indices into ``face_ind``), the
  project's grid triangulation (:func:`model.uses.uv_grid_triangles`), same text format;
* ``canonical_vertices.npy``: (K, 3) float64, the mean face at the face pixels in PRNet's frame
  (:func:`prnet_canonical`);
* ``uv_face_mask.png``: (S, S) 8-bit grayscale, 255 in the face, 0 outside;
* ``uv_weight_mask.png``: (S, S) 8-bit grayscale, ``min(255, floor(16 * weight))`` of the flat
  weights (16 key points, 4 eyes/nose/mouth, 3 face, blends along edges), 0 outside the face.

The face mask, key points and weights come from the model (``mask_source="model"``) or from
PRNet's own PNGs and key points (``"prnet"``, ``prnet_dir``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model.uses import build_face_uv
from uvgen.atomic import atomic_output
from uvgen.groundtruth import build_uv_layout
from uvgen.masks import (
    UV_SIZE,
    UVMasks,
    build_uv_masks,
    weights_to_png,
)

#: Model units -> PRNet's canonical units at S = 256 (measured on its file: 1.2e-3 exactly).
CANONICAL_SCALE = 1.2e-3
ASSET_FILES = (
    "uv_kpt_ind.txt",
    "face_ind.txt",
    "triangles.txt",
    "canonical_vertices.npy",
    "uv_face_mask.png",
    "uv_weight_mask.png",
)


def asset_masks(
    model: Any, layout: Any, mask_source: str = "model", prnet_dir: str | Path | None = None
) -> UVMasks:
    """The :class:`UVMasks` the files are written from (:func:`uvgen.masks.build_uv_masks`):
    weights in flat mode (PRNet's blends) for ``"model"``, PRNet's weight bytes decoded exactly
    for ``"prnet"`` (its face mask, key points and PNGs from ``prnet_dir``); 0 outside the face."""
    mode = "flat" if mask_source == "model" else "exact"
    return build_uv_masks(
        model, layout.size, mask_source, prnet_dir, weight_mode=mode, raster=layout.raster
    )


def prnet_canonical(model: Any, canonical: np.ndarray, size: int = UV_SIZE) -> np.ndarray:
    """(K, 3) float64 canonical vertices in PRNet's frame from model-space ones (K, 3) (BFM units,
    y up).

    PRNet's ``canonical_vertices.npy`` is the mean face posed with no rotation or translation at
    scale 1.2e-3 (per 256 UV pixels) in an S-pixel image, as face3d draws a map: ``(s x,
    S - 1 - s y, s z - min(s z))``, the minimum over all the mean's vertices (measured on PRNet's
    file: scale 1.2e-3 exactly, offsets (0.0001, 255.001, 18.311) against (0, 255, 18.311))."""
    s = CANONICAL_SCALE * size / UV_SIZE
    mean_z = (
        np.asarray(model.shape_mu, np.float64)[2::3] + np.asarray(model.exp_mu, np.float64)[2::3]
    )
    c = np.asarray(canonical, dtype=np.float64)
    return np.column_stack([s * c[:, 0], (size - 1) - s * c[:, 1], s * c[:, 2] - s * mean_z.min()])


def _text(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savetxt(buf, array)  # PRNet's files: '%.18e', space-separated, '\n'
    return buf.getvalue()


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def write_uv_assets(
    model: Any,
    out_dir: str | Path,
    mask_source: str = "model",
    prnet_dir: str | Path | None = None,
    size: int = UV_SIZE,
) -> dict[str, Path]:
    """Write PRNet's six uv-data files for ``model`` into ``out_dir`` (created; each file written
    atomically); returns ``{file name: path}``. Raises ValueError when a face pixel has no
    canonical position (no model triangle near it)."""
    layout = build_uv_layout(model, size)
    masks = asset_masks(model, layout, mask_source, prnet_dir)
    uv = build_face_uv(model, masks=masks, layout=layout)
    if not np.isfinite(uv.canonical).all():
        bad = int(np.flatnonzero(~np.isfinite(uv.canonical).all(axis=1))[0])
        raise ValueError(
            f"canonical_vertices: face pixel {int(uv.face_ind[bad])} is covered by no model "
            "triangle, nor are its neighbours"
        )
    contents = {
        "uv_kpt_ind.txt": _text(np.asarray(masks.kpt_uv, dtype=np.float64)),
        "face_ind.txt": _text(np.asarray(uv.face_ind, dtype=np.float64)),
        "triangles.txt": _text(np.asarray(uv.triangles, dtype=np.float64)),
        "canonical_vertices.npy": _npy(prnet_canonical(model, uv.canonical, size)),
        "uv_face_mask.png": _png(np.where(masks.face, 255, 0)),
        "uv_weight_mask.png": _png(weights_to_png(masks.weights)),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ASSET_FILES:
        paths[name] = out_dir / name
        with atomic_output(paths[name]) as fh:
            fh.write(contents[name])
    return paths
