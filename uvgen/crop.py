"""Bilinear warp of an image into a crop (docs/conventions.md section 4).

The crop is ``skimage.transform.warp(image / 255, T.inverse, output_shape=(S, S))`` with order 1
and constant 0 outside, as PRNet's generator computes it: crop pixel (x, y) samples the image at
``T^-1 @ [x, y, 1]`` with bilinear weights, and a neighbour outside the image counts as 0.
Pixel centres are at integer coordinates (x right, y down). The result is rounded to uint8.
"""

from __future__ import annotations

import numpy as np


def crop_sample_points(transform: np.ndarray, out_size: int) -> np.ndarray:
    """(out, out, 2) original-image (x, y) that each crop pixel samples, for ``T`` image -> crop."""
    inv = np.linalg.inv(np.asarray(transform, dtype=np.float64))
    ys, xs = np.mgrid[0:out_size, 0:out_size].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    return np.stack([sx, sy], axis=-1)


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float32 (*x.shape, C): ``image`` (H, W, C) read bilinearly at the finite pixel positions
    ``x``, ``y`` (float64; x right, y down, centres at integers); neighbours outside the image count
    as 0 (the constant-0 border), so a point more than one pixel outside reads 0."""
    h, w, c = image.shape
    # Far-away samples all read the zero outside: clip before the integer cast (no overflow).
    x, y = np.clip(x, -2.0, w + 1.0), np.clip(y, -2.0, h + 1.0)
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0).astype(np.float32)[..., None]
    fy = (y - y0).astype(np.float32)[..., None]
    # Zero border of one pixel; indices beyond it clamp onto it, so outside neighbours read 0.
    padded = np.zeros((h + 2, w + 2, c), dtype=np.float32)
    padded[1:-1, 1:-1] = image
    xi0 = np.clip(x0 + 1, 0, w + 1).astype(np.intp)
    yi0 = np.clip(y0 + 1, 0, h + 1).astype(np.intp)
    xi1 = np.clip(x0 + 2, 0, w + 1).astype(np.intp)
    yi1 = np.clip(y0 + 2, 0, h + 1).astype(np.intp)
    flat = padded.reshape(-1, c)
    stride = w + 2
    top = flat[yi0 * stride + xi0] * (1 - fx) + flat[yi0 * stride + xi1] * fx
    bottom = flat[yi1 * stride + xi0] * (1 - fx) + flat[yi1 * stride + xi1] * fx
    return top * (1 - fy) + bottom * fy


def _axis_weights(start: float, step: float, count: int, length: int) -> tuple[np.ndarray, ...]:
    """Indices and bilinear weights along one axis for samples ``start + step * k``, k < count.

    Neighbours outside [0, length) get weight 0 (the constant-0 border)."""
    pos = start + step * np.arange(count, dtype=np.float64)
    # Far-away samples all read the zero outside: clip before the integer cast (no overflow).
    pos = np.clip(pos, -2.0, length + 1.0)
    lo = np.floor(pos)
    w_hi = (pos - lo).astype(np.float32)
    w_lo = 1.0 - w_hi
    lo = lo.astype(np.intp)
    hi = lo + 1
    w_lo *= (lo >= 0) & (lo < length)
    w_hi *= (hi >= 0) & (hi < length)
    return np.clip(lo, 0, length - 1), np.clip(hi, 0, length - 1), w_lo, w_hi


def _warp_axis_aligned(img: np.ndarray, inv: np.ndarray, out_size: int) -> np.ndarray:
    """Separable bilinear warp for a scale-and-shift transform (the crop of section 4).

    Rows first (only the columns the crop reads), then columns; float32 on the 0..255 scale."""
    h, w, c = img.shape
    y_lo, y_hi, wy_lo, wy_hi = _axis_weights(inv[1, 2], inv[1, 1], out_size, h)
    x_lo, x_hi, wx_lo, wx_hi = _axis_weights(inv[0, 2], inv[0, 0], out_size, w)
    first, last = int(x_lo.min()), int(x_hi.max()) + 1
    band = img[:, first:last]
    rows = band[y_lo].astype(np.float32)
    rows *= wy_lo[:, None, None]
    lower = band[y_hi].astype(np.float32)
    lower *= wy_hi[:, None, None]
    rows += lower
    # Columns as a flat take over (x, channel) pairs: much faster than fancy indexing on axis 1.
    rows = rows.reshape(out_size, -1)
    channels = np.arange(c)
    out = np.take(rows, ((x_lo - first)[:, None] * c + channels).ravel(), axis=1)
    out *= np.repeat(wx_lo, c)
    right = np.take(rows, ((x_hi - first)[:, None] * c + channels).ravel(), axis=1)
    right *= np.repeat(wx_hi, c)
    out += right
    return out.reshape(out_size, out_size, c)


def warp_to_crop(image: np.ndarray, transform: np.ndarray, out_size: int = 256) -> np.ndarray:
    """(out, out, C) uint8 crop of the (h, w, C) uint8 ``image`` under ``transform`` (3, 3).

    Bilinear with zero outside the image; values are interpolated in float32 on the 0..255 scale
    and rounded to the nearest integer (skimage's ``img_as_ubyte`` of the [0, 1] result).
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    t = np.asarray(transform, dtype=np.float64)
    if t.shape != (3, 3) or not np.all(np.isfinite(t)) or abs(np.linalg.det(t[:2, :2])) < 1e-12:
        raise ValueError(
            f"crop transform must be a finite invertible (3, 3) matrix, got {t.tolist()}"
        )
    inv = np.linalg.inv(t)
    if abs(inv[0, 1]) < 1e-12 * abs(inv[0, 0]) and abs(inv[1, 0]) < 1e-12 * abs(inv[1, 1]):
        # No rotation (the crop box is axis-aligned; Umeyama leaves ~1e-16 off the diagonal).
        out = _warp_axis_aligned(img, inv, out_size)
        # Convex combinations of 0..255 values: rounding is all that is left to do.
        np.rint(out, out=out)
        return out.astype(np.uint8)
    pts = crop_sample_points(transform, out_size)
    out = sample_bilinear(img, pts[..., 0], pts[..., 1])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
