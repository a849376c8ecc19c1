"""UV position maps -> points in original-image pixels: the decoding shared by every method's
predictions (the predict stage) and the ground truth (:class:`eval.evaluate.GroundTruthFile`).

PRNet's decoding (docs/conventions.md section 5): the 68 landmarks at ``map[kpt_uv[1], kpt_uv[0]]``,
the dense face vertices at ``map.reshape(-1, 3)[face_ind]``; crop pixels go back to the original
image through the inverse of each test record's crop transform ((x, y) by the inverse similarity,
z / ``T[0, 0]``).
"""

from __future__ import annotations

import numpy as np


def to_image_batch(points_crop: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Crop-pixel points (B, P, 3) -> original-image pixels (B, P, 3) float64.

    The batched form of :func:`model.inference.map_to_image`: ``transforms`` (B, 3, 3) original ->
    crop (similarities); (x, y) go through each inverse, z is divided by ``T[0, 0]``.
    """
    t = np.asarray(transforms, dtype=np.float64)
    pts = np.asarray(points_crop, dtype=np.float64)
    inv = np.linalg.inv(t)
    out = np.empty(pts.shape, np.float64)
    x, y = pts[..., 0], pts[..., 1]
    out[..., 0] = inv[:, 0, 0, None] * x + inv[:, 0, 1, None] * y + inv[:, 0, 2, None]
    out[..., 1] = inv[:, 1, 0, None] * x + inv[:, 1, 1, None] * y + inv[:, 1, 2, None]
    out[..., 2] = pts[..., 2] / t[:, 0, 0, None]
    return out


def decode_maps(
    maps: np.ndarray, transforms: np.ndarray, kpt_uv: np.ndarray, face_ind: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Crop-space UV position maps -> (landmarks (B, 68, 3), dense (B, K, 3)) float32 in
    original-image pixels.

    ``maps`` (B, S, S, 3) in crop pixels; ``transforms`` (B, 3, 3) original -> crop pixels (the
    test file's ``transform``); ``kpt_uv`` (2, 68) row 0 = column, row 1 = row; ``face_ind`` (K,)
    flat row-major indices. PRNet's decoding (docs/conventions.md section 5: ``map[kv, ku]`` and
    ``map.reshape(-1, 3)[face_ind]``), then :func:`to_image_batch` on the sampled points only.
    """
    maps = np.asarray(maps)
    t = np.asarray(transforms, dtype=np.float64)
    if (
        maps.ndim != 4
        or maps.shape[-1] != 3
        or maps.shape[1] != maps.shape[2]
        or t.shape != (len(maps), 3, 3)
    ):
        raise ValueError(
            f"maps (B, S, S, 3) and transforms (B, 3, 3) needed, got {maps.shape}, {t.shape}"
        )
    kpt = np.asarray(kpt_uv, dtype=np.int64)
    flat = maps.reshape(len(maps), -1, 3)
    lm = flat[:, kpt[1] * maps.shape[2] + kpt[0]]
    dense = flat[:, np.asarray(face_ind, dtype=np.int64)]
    return to_image_batch(lm, t).astype(np.float32), to_image_batch(dense, t).astype(np.float32)
