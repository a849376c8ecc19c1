"""Triangle rasterisation with face3d's coverage rule, vectorised in numpy (float64 by default).

Pixel coordinates: x to the right (column), y down (row); pixel (x, y) has its centre at the integer
point (x, y). A triangle (p0, p1, p2) covers pixel p when, with ``v0 = p2 - p0``, ``v1 = p1 - p0``,
``v2 = p - p0`` and the barycentric pair

    u = (dot11*dot02 - dot01*dot12) * inv,   v = (dot00*dot12 - dot01*dot02) * inv,
    inv = 1 / (dot00*dot11 - dot01**2)   (0 when that denominator is 0),

``u >= 0 and v >= 0 and u + v < 1``. Only pixels inside the triangle's integer bounding box clipped
to the image are candidates. The weights of p for (p0, p1, p2) are ``(1 - u - v, v, u)``.
A degenerate triangle (zero denominator) therefore covers every candidate pixel with weights
(1, 0, 0), as face3d's C++ rasteriser (used for PRNet's ground truth) does.

Optionally (``border``), candidate pixels in a band along the image edge count as covered whatever
u and v are, as in face3d's C++ (2 px there); without it the real BFM UV layout leaves 341 pixels of
that band empty, with it all 65,536 are covered.

Who wins a pixel covered by several triangles:
  * no depth: the earliest triangle in the list (the UV position map's rule);
  * with per-vertex depth z (larger = closer to the viewer): the largest interpolated
    ``w0*z0 + w1*z1 + w2*z2``; equal depths go to the earlier triangle (a strict '>' z-buffer test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import sparse

# face3d's C++ rasteriser treats every candidate pixel within 2 px of the image edge as covered.
FACE3D_BORDER = 2

# Candidate pixels evaluated per batch: bounds the temporaries (~100 bytes each) and keeps them in
# cache.
_CHUNK_CANDIDATES = 1 << 15


@dataclass(frozen=True, eq=False)
class Rasterization:
    """Which triangle covers each pixel of an (height, width) image, and with which weights.

    Stored compactly, one row per covered pixel; the dense per-pixel views are built on demand.

    Attributes:
        height, width: image size in pixels.
        pixels: (P,) int64, flat indices ``y * width + x`` of the covered pixels, ascending.
        tri_of_pixel: (P,) int32, the winning triangle of each covered pixel.
        bary: (P, 3) float64, its barycentric weights for the triangle's vertices (p0, p1, p2).
        vertex_ids: (P, 3) int64, the winning triangle's vertex indices (p0, p1, p2).
        n_vertices: number of mesh vertices n (rows expected in per-vertex values).
    """

    height: int
    width: int
    pixels: np.ndarray
    tri_of_pixel: np.ndarray
    bary: np.ndarray
    vertex_ids: np.ndarray
    n_vertices: int
    _matrices: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return self.height, self.width

    @cached_property
    def tri_index(self) -> np.ndarray:
        """(h, w) int32, index of the winning triangle, -1 on background."""
        out = np.full(self.height * self.width, -1, dtype=np.int32)
        out[self.pixels] = self.tri_of_pixel
        return out.reshape(self.height, self.width)

    @cached_property
    def weights(self) -> np.ndarray:
        """(h, w, 3) float64 barycentric weights of the winning triangle; 0 on background."""
        out = np.zeros((self.height * self.width, 3), dtype=np.float64)
        out[self.pixels] = self.bary
        return out.reshape(self.height, self.width, 3)

    @property
    def mask(self) -> np.ndarray:
        """(h, w) bool, True where a triangle covers the pixel."""
        return self.tri_index >= 0

    def sampling_matrix(self, dtype=np.float64, compact: bool = False) -> sparse.csr_matrix:
        """Sparse (h*w, n) matrix (or (P, n) when ``compact``) with the 3 weights of each pixel.

        ``matrix @ vertex_values`` interpolates (n, c) per-vertex values; rows of background
        pixels are empty. Built once per dtype and cached.
        """
        key = (np.dtype(dtype).str, bool(compact))
        if key not in self._matrices:
            n_rows = len(self.pixels) if compact else self.height * self.width
            counts = np.zeros(n_rows + 1, dtype=np.int64)
            counts[1:][np.arange(len(self.pixels)) if compact else self.pixels] = 3
            indptr = np.cumsum(counts)
            self._matrices[key] = sparse.csr_matrix(
                (self.bary.astype(dtype).ravel(), self.vertex_ids.ravel(), indptr),
                shape=(n_rows, self.n_vertices),
            )
        return self._matrices[key]

    def _values(self, vertex_values: np.ndarray) -> np.ndarray:
        values = np.asarray(vertex_values)
        if values.ndim != 2 or values.shape[0] != self.n_vertices:
            raise ValueError(f"vertex_values must be ({self.n_vertices}, c), got {values.shape}")
        dtype = np.float32 if values.dtype == np.float32 else np.float64
        return values.astype(dtype, copy=False)

    def interpolate_compact(self, vertex_values: np.ndarray) -> np.ndarray:
        """(P, c) barycentric interpolation of per-vertex values (n, c) at the covered pixels.

        float32 in gives float32 out (computed in float32), anything else float64.
        """
        values = self._values(vertex_values)
        return np.asarray(self.sampling_matrix(values.dtype, compact=True) @ values)

    def interpolate(self, vertex_values: np.ndarray, background: float = 0.0) -> np.ndarray:
        """(h, w, c) image of per-vertex values (n, c) interpolated at every covered pixel.

        Background pixels hold ``background``. float32 in gives float32 out, else float64.
        """
        values = self._values(vertex_values)
        out = np.asarray(self.sampling_matrix(values.dtype) @ values)
        if background != 0:
            covered = np.zeros(len(out), dtype=bool)
            covered[self.pixels] = True
            out[~covered] = background
        return out.reshape(self.height, self.width, values.shape[1])


def finite_points(values: np.ndarray, dims: int, name: str) -> np.ndarray:
    """``values`` as a float64 (n, dims) array; ValueError naming ``name`` for another shape or a
    non-finite value."""
    points = np.asarray(values, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != dims:
        raise ValueError(f"{name} must be (n, {dims}), got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{name} contains non-finite values")
    return points


def _check_inputs(points_xy, triangles, height, width, depth):
    points = finite_points(points_xy, 2, "points_xy")
    tri = np.asarray(triangles)
    if tri.ndim != 2 or tri.shape[1] != 3 or not np.issubdtype(tri.dtype, np.integer):
        raise ValueError(f"triangles must be an (m, 3) integer array, got {tri.dtype} {tri.shape}")
    tri = tri.astype(np.int64, copy=False)
    if tri.size and (tri.min() < 0 or tri.max() >= len(points)):
        raise ValueError(f"triangle vertex indices must lie in [0, {len(points)})")
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    z = None
    if depth is not None:
        z = np.asarray(depth, dtype=np.float64)
        if z.shape != (len(points),):
            raise ValueError(f"depth must be ({len(points)},), got shape {z.shape}")
        if not np.all(np.isfinite(z)):
            raise ValueError("depth contains non-finite values")
    return points, tri, int(height), int(width), z


def _chunks(counts: np.ndarray, limit: int):
    """Yield (start, stop) ranges of triangles whose candidate counts sum to about ``limit``."""
    cum = np.cumsum(counts)
    start, m = 0, len(counts)
    while start < m:
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + limit, side="right"))
        stop = max(stop, start + 1)
        yield start, stop
        start = stop


@dataclass(frozen=True)
class _Triangles:
    """The triangles with candidate pixels (``live``, indices into the triangle list), their
    candidate boxes [x_lo, x_hi] x [y_lo, y_hi] (int64, clipped to the image) and the terms of the
    coverage rule (float ``dtype``), in the order of operations of the module docstring."""

    live: np.ndarray
    x_lo: np.ndarray
    x_hi: np.ndarray
    y_lo: np.ndarray
    y_hi: np.ndarray
    terms: tuple[np.ndarray, ...]  # x0, y0, v0x, v0y, v1x, v1y, dot00, dot01, dot11, inv


def _triangle_terms(points: np.ndarray, tri: np.ndarray, h: int, w: int) -> _Triangles:
    # One gather per coordinate: (m, 3) corner values, read as three column views.
    xs, ys = np.take(points[:, 0], tri), np.take(points[:, 1], tri)
    x0, x1, x2 = xs[:, 0], xs[:, 1], xs[:, 2]
    y0, y1, y2 = ys[:, 0], ys[:, 1], ys[:, 2]
    # Candidate box [ceil(min), floor(max)] clipped to the image (clipped before the integer cast
    # so that far-away coordinates cannot overflow; an empty box stays empty).
    x_lo = np.clip(np.ceil(np.minimum(np.minimum(x0, x1), x2)), 0, w).astype(np.int64)
    x_hi = np.clip(np.floor(np.maximum(np.maximum(x0, x1), x2)), -1, w - 1).astype(np.int64)
    y_lo = np.clip(np.ceil(np.minimum(np.minimum(y0, y1), y2)), 0, h).astype(np.int64)
    y_hi = np.clip(np.floor(np.maximum(np.maximum(y0, y1), y2)), -1, h - 1).astype(np.int64)
    live = np.flatnonzero((x_hi >= x_lo) & (y_hi >= y_lo))  # triangles with candidate pixels
    x0, y0, x1, y1, x2, y2 = (a[live] for a in (x0, y0, x1, y1, x2, y2))
    # Per-triangle terms (float `dtype`), in the exact order of operations of the rule above.
    v0x, v0y = x2 - x0, y2 - y0
    v1x, v1y = x1 - x0, y1 - y0
    dot00 = v0x * v0x + v0y * v0y
    dot01 = v0x * v1x + v0y * v1y
    dot11 = v1x * v1x + v1y * v1y
    denom = dot00 * dot11 - dot01 * dot01
    inv = np.zeros_like(denom)
    nonzero = denom != 0
    inv[nonzero] = 1 / denom[nonzero]
    return _Triangles(
        live,
        x_lo[live],
        x_hi[live],
        y_lo[live],
        y_hi[live],
        (x0, y0, v0x, v0y, v1x, v1y, dot00, dot01, dot11, inv),
    )


def _barycentric(
    px: np.ndarray, py: np.ndarray, terms: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of the coverage rule at pixel centres (px, py) (float, one per candidate) for the
    candidates' triangle terms (:class:`_Triangles`.terms, one row per candidate)."""
    x0, y0, v0x, v0y, v1x, v1y, dot00, dot01, dot11, inv = terms
    v2x = px - x0
    v2y = py - y0
    dot02 = v0x * v2x + v0y * v2y
    dot12 = v1x * v2x + v1y * v2y
    u = (dot11 * dot02 - dot01 * dot12) * inv
    v = (dot00 * dot12 - dot01 * dot02) * inv
    return u, v


def _covers(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u >= 0) & (v >= 0) & (u + v < 1)


def _prepare(points_xy, triangles, height, width, depth, precision):
    points, tri, h, w, z = _check_inputs(points_xy, triangles, height, width, depth)
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    dtype = np.dtype(precision)
    points = points.astype(dtype)
    if z is not None:
        z = z.astype(dtype)
    return points, tri, h, w, z, dtype


def rasterize(
    points_xy: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
    depth: np.ndarray | None = None,
    border: int = 0,
    precision: str = "float64",
) -> Rasterization:
    """Rasterise triangles over an (height, width) pixel grid with face3d's coverage rule.

    Args:
        points_xy: (n, 2) vertex positions in pixels (x right, y down, centres at integers).
        triangles: (m, 3) 0-based vertex indices.
        height, width: image size in pixels.
        depth: (n,) per-vertex depth, larger = closer to the viewer; None = the earliest
            triangle in the list wins every pixel it covers.
        border: width in pixels of the image's edge band (``x < border``, ``x > width-1-border``,
            same for y) in which a candidate pixel counts as covered whatever u and v are (its
            weights are then extrapolated and may fall outside [0, 1]). 0 = the plain rule;
            :data:`FACE3D_BORDER` (2) = face3d's C++ rasteriser, which PRNet's ground truth used.
        precision: "float64" (default) or "float32": the arithmetic of the whole rule, the point
            coordinates and depths included. face3d's C++ works in float32; the two can differ
            where a triangle is nearly degenerate or a pixel centre lies on an edge.
    """
    points, tri, h, w, z, dtype = _prepare(points_xy, triangles, height, width, depth, precision)
    border = int(border)
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")

    tris = _triangle_terms(points, tri, h, w)
    live, x_lo, x_hi, y_lo, y_hi = tris.live, tris.x_lo, tris.x_hi, tris.y_lo, tris.y_hi
    nx = x_hi - x_lo + 1
    counts = nx * (y_hi - y_lo + 1)

    # Candidate pixels are indexed inside the bounding box of all candidates (bw x bh).
    gx, gy = (int(x_lo.min()), int(y_lo.min())) if len(live) else (0, 0)
    bw = int(x_hi.max()) - gx + 1 if len(live) else 0
    bh = int(y_hi.max()) - gy + 1 if len(live) else 0
    band = None
    if border:
        band = (border - gx, w - 1 - border - gx, border - gy, h - 1 - border - gy)

    parts: list[tuple[np.ndarray, ...]] = []
    for a, b in _chunks(counts, _CHUNK_CANDIDATES):
        c = counts[a:b]
        t = np.repeat(np.arange(a, b), c)  # candidate -> index into `live`
        k = np.arange(len(t)) - np.repeat(np.cumsum(c) - c, c)
        row, col = np.divmod(k, np.repeat(nx[a:b], c))
        lx = np.repeat(x_lo[a:b] - gx, c) + col  # pixel position inside the candidate box
        ly = np.repeat(y_lo[a:b] - gy, c) + row
        u, v = _barycentric(
            (lx + gx).astype(dtype),
            (ly + gy).astype(dtype),
            tuple(np.repeat(term[a:b], c) for term in tris.terms),
        )
        keep = _covers(u, v)
        if band is not None:
            keep |= (lx < band[0]) | (lx > band[1]) | (ly < band[2]) | (ly > band[3])
        parts.append((ly[keep] * bw + lx[keep], t[keep], u[keep], v[keep]))

    if parts:
        lpix, t_c, u_c, v_c = (np.concatenate(p) for p in zip(*parts))
    else:
        lpix, t_c = np.zeros(0, np.int64), np.zeros(0, np.int64)
        u_c, v_c = np.zeros(0, dtype), np.zeros(0, dtype)
    w0 = 1 - u_c - v_c

    # Winners: candidates are in ascending triangle order, so the smallest candidate index among
    # a pixel's best candidates is the earliest triangle (a strict '>' z-buffer in list order).
    n_cand = len(lpix)
    first = np.full(bw * bh, n_cand, dtype=np.int64)
    if z is None:
        np.minimum.at(first, lpix, np.arange(n_cand))
    else:
        tri_c = tri[live[t_c]]
        zc = w0 * z[tri_c[:, 0]] + v_c * z[tri_c[:, 1]] + u_c * z[tri_c[:, 2]]
        zbuf = np.full(bw * bh, -np.inf, dtype=dtype)
        np.maximum.at(zbuf, lpix, zc)
        best = np.flatnonzero((zc == zbuf[lpix]) & (zc > -np.inf))
        np.minimum.at(first, lpix[best], best)
    local = np.flatnonzero(first < n_cand)
    win = first[local]
    win_tri = live[t_c[win]]
    ly, lx = np.divmod(local, bw) if bw else (local, local)
    return Rasterization(
        height=h,
        width=w,
        pixels=(ly + gy) * w + (lx + gx),
        tri_of_pixel=win_tri.astype(np.int32),
        bary=np.stack([w0[win], v_c[win], u_c[win]], axis=1).astype(np.float64),
        vertex_ids=tri[win_tri],
        n_vertices=len(points),
    )


def zbuffer(
    points_xy: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
    depth: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(z (height, width) float64, mask (height, width) bool): the z-buffer of
    ``rasterize(points_xy, triangles, height, width, depth=depth)`` without its winners and
    weights: at each covered pixel the largest interpolated depth ``w0*z0 + w1*z1 + w2*z2`` (the
    winner's, computed as rasterize computes it), 0 elsewhere. Faster for meshes of many small
    triangles (a face's dense mesh, whose triangles cover one pixel or none): a triangle whose
    candidate box is at most 2 x 2 pixels is evaluated at each box offset in turn, with no
    per-candidate copies of its terms."""
    points, tri, h, w, z, dtype = _prepare(points_xy, triangles, height, width, depth, "float64")
    tris = _triangle_terms(points, tri, h, w)
    nx = tris.x_hi - tris.x_lo + 1
    ny = tris.y_hi - tris.y_lo + 1
    zbuf = np.full(h * w, -np.inf, dtype=dtype)

    def draw(sel: np.ndarray | slice, px: np.ndarray, py: np.ndarray) -> None:
        """Candidates (px, py) of the live triangles ``sel`` into the z-buffer."""
        u, v = _barycentric(px.astype(dtype), py.astype(dtype), [a[sel] for a in tris.terms])
        keep = _covers(u, v)
        u, v, corners = u[keep], v[keep], tri[tris.live[sel][keep]]
        zc = (1 - u - v) * z[corners[:, 0]] + v * z[corners[:, 1]] + u * z[corners[:, 2]]
        np.maximum.at(zbuf, py[keep] * w + px[keep], zc)

    small = (nx <= 2) & (ny <= 2)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        sel = np.flatnonzero(small & (nx > dx) & (ny > dy))
        if len(sel) == len(nx):  # every live triangle (the first offset, mostly): no copies
            sel = slice(None)
        if len(nx) and (isinstance(sel, slice) or len(sel)):
            draw(sel, tris.x_lo[sel] + dx, tris.y_lo[sel] + dy)
    large = np.flatnonzero(~small)
    counts = (nx * ny)[large]
    for a, b in _chunks(counts, _CHUNK_CANDIDATES):  # the rest: every pixel of each box
        c = counts[a:b]
        sel = np.repeat(large[a:b], c)
        k = np.arange(len(sel)) - np.repeat(np.cumsum(c) - c, c)
        row, col = np.divmod(k, nx[sel])
        draw(sel, tris.x_lo[sel] + col, tris.y_lo[sel] + row)
    mask = zbuf > -np.inf
    return np.where(mask, zbuf, 0.0).reshape(h, w), mask.reshape(h, w)
