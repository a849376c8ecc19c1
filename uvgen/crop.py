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


def _bilinear_indices(pos: np.ndarray, length: int) -> tuple[np.ndarray, ...]:
    """(i0, i1, frac) of finite positions ``pos`` (float64) along an axis of ``length`` pixels:
    the two neighbours' indices into the axis padded by one zero pixel each side (indices beyond
    the padding clamp onto it) and the float32 weight of the second."""
    # Far-away samples all read the zero outside: clip before the integer cast (no overflow).
    pos = np.clip(pos, -2.0, length + 1.0)
    lo = np.floor(pos)
    frac = (pos - lo).astype(np.float32)
    i0 = np.clip(lo + 1, 0, length + 1).astype(np.intp)
    i1 = np.clip(lo + 2, 0, length + 1).astype(np.intp)
    return i0, i1, frac


def _padded_window(
    image: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], channels: int
) -> np.ndarray:
    """Rows [r0, r1) and columns [c0, c1) of ``image`` (H, W, C) padded by one zero pixel each
    side (padded index p is image index p - 1), in its own dtype, with ``channels`` >= C channels
    (the extra ones 0). Gathered values are cast to float32 after the gather: the same values as
    casting first."""
    h, w, c = image.shape
    (r0, r1), (c0, c1) = rows, cols
    window = np.zeros((r1 - r0, c1 - c0, channels), dtype=image.dtype)
    ir0, ir1 = max(r0 - 1, 0), min(r1 - 1, h)  # the image rows and columns inside the window
    ic0, ic1 = max(c0 - 1, 0), min(c1 - 1, w)
    if ir1 > ir0 and ic1 > ic0:
        window[ir0 + 1 - r0 : ir1 + 1 - r0, ic0 + 1 - c0 : ic1 + 1 - c0, :c] = image[
            ir0:ir1, ic0:ic1
        ]
    return window


def _zero_padded(image: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) with a border of one zero pixel, in its own dtype."""
    h, w, c = image.shape
    return _padded_window(image, (0, h + 2), (0, w + 2), c)


def _pixel_reader(image: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]):
    """A function: flat indices into the :func:`_padded_window` ``rows`` x ``cols`` of ``image``
    (H, W, C) (row stride ``cols[1] - cols[0]``) -> float32 (C, *index.shape) pixels, channel
    first (the arithmetic after it runs over long contiguous rows). Up to four uint8 channels are
    read as one 4-byte word per pixel (a plain 1-D gather, several times faster than gathering
    rows of C bytes); the values are the same."""
    c = image.shape[2]
    if image.dtype == np.uint8 and c <= 4:
        words = _padded_window(image, rows, cols, 4).view(np.uint32).reshape(-1)

        def read(index: np.ndarray) -> np.ndarray:
            px = np.take(words, np.ravel(index)).view(np.uint8).reshape(-1, 4)
            return px.T[:c].astype(np.float32, order="C").reshape(c, *np.shape(index))

        return read
    flat = _padded_window(image, rows, cols, c).reshape(-1, c)
    return lambda index: (
        flat[np.ravel(index)].T.astype(np.float32, order="C").reshape(c, *np.shape(index))
    )


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float32 (*x.shape, C): ``image`` (H, W, C) read bilinearly at the finite pixel positions
    ``x``, ``y`` (float64; x right, y down, centres at integers); neighbours outside the image count
    as 0 (the constant-0 border), so a point more than one pixel outside reads 0."""
    h, w, c = image.shape
    if np.size(x) == 0:
        return np.zeros((*np.shape(x), c), dtype=np.float32)
    xi0, xi1, fx = _bilinear_indices(x, w)
    yi0, yi1, fy = _bilinear_indices(y, h)
    # Only the window of the padded image that the samples read (i1 >= i0 on both axes).
    r0, c0 = int(yi0.min()), int(xi0.min())
    stride = int(xi1.max()) + 1 - c0
    read = _pixel_reader(image, (r0, int(yi1.max()) + 1), (c0, c0 + stride))
    x0, x1 = xi0 - c0, xi1 - c0
    y0, y1 = (yi0 - r0) * stride, (yi1 - r0) * stride
    gx, gy = 1 - fx, 1 - fy
    top = read(y0 + x0) * gx + read(y0 + x1) * fx
    bottom = read(y1 + x0) * gx + read(y1 + x1) * fx
    return np.ascontiguousarray(np.moveaxis(top * gy + bottom * fy, 0, -1))


def sample_bilinear_grid(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float32 (len(y), len(x), C): :func:`sample_bilinear` at the grid of the finite positions
    ``x`` (columns) and ``y`` (rows), equal to it bit for bit (the same float32 operations on the
    same values) but gathering whole rows, then columns, instead of single pixels."""
    h, w, c = image.shape
    xi0, xi1, fx = _bilinear_indices(np.asarray(x, dtype=np.float64), w)
    yi0, yi1, fy = _bilinear_indices(np.asarray(y, dtype=np.float64), h)
    padded = _zero_padded(image)
    first, last = int(min(xi0.min(), xi1.min())), int(max(xi0.max(), xi1.max())) + 1
    band = padded[:, first:last]  # only the columns the samples read
    # Rows of (x, channel) pairs: the column weights repeated per channel, contiguous.
    channels = np.arange(c)
    cols0 = ((xi0 - first)[:, None] * c + channels).ravel()
    cols1 = ((xi1 - first)[:, None] * c + channels).ravel()
    wx1 = np.repeat(fx, c)[None, :]
    wx0 = np.repeat(1 - fx, c)[None, :]

    def row_mix(yi: np.ndarray) -> np.ndarray:
        rows = band[yi].reshape(len(yi), -1)  # a flat take along (x, channel): fast
        left = np.take(rows, cols0, axis=1).astype(np.float32)
        right = np.take(rows, cols1, axis=1).astype(np.float32)
        left *= wx0  # in place: the same float32 products and sums as sample_bilinear
        right *= wx1
        left += right
        return left

    top, bottom = row_mix(yi0), row_mix(yi1)
    top *= (1 - fy)[:, None]
    bottom *= fy[:, None]
    top += bottom
    return top.reshape(len(yi0), len(xi0), c)


def warp_float(image: np.ndarray, transform: np.ndarray, out_size: int = 256) -> np.ndarray:
    """float32 (out, out, C) crop of ``image`` (h, w, C) under ``transform`` (3, 3, finite and
    invertible), on the image's scale and unrounded: :func:`sample_bilinear` at
    :func:`crop_sample_points` (PRNet's demo crop of the image / 255, times 255). An unrotated
    transform (the crop boxes of section 4) samples a grid: :func:`sample_bilinear_grid`, the
    same values."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    inv = np.linalg.inv(np.asarray(transform, dtype=np.float64))
    if inv[0, 1] == 0 and inv[1, 0] == 0:
        # crop_sample_points' x = inv00 * col + inv01 * row + inv02 with inv01 = 0 is the same
        # for every row (up to the sign of a zero, which no later step sees); y likewise.
        k = np.arange(out_size, dtype=np.float64)
        xs = inv[0, 0] * k + inv[0, 1] * 0.0 + inv[0, 2]
        ys = inv[1, 0] * 0.0 + inv[1, 1] * k + inv[1, 2]
        return sample_bilinear_grid(img, xs, ys)
    pts = crop_sample_points(transform, out_size)
    return sample_bilinear(img, pts[..., 0], pts[..., 1])


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
