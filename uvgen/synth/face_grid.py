"""The embedded face model's topology: a row grid over the UV square with a mouth slit.

The surface is sampled on ``nv`` rows (row 0 at v = 0, the bottom of the face; the last row at
v = 1, the top of the forehead). Row ``j`` holds ``m`` or ``m + 1`` vertices evenly spaced in u
over [0, 1], so any vertex count from :data:`MIN_VERTICES` up can be met exactly. Vertex ``k`` of
row ``j`` has UV ``(k / (count_j - 1), j / (nv - 1))``; vertices are numbered row by row.

Consecutive rows are joined by a zipper triangulation (a regular quad split where both rows have
the same count). Every triangle is wound clockwise in (u right, v up) -- negative signed area, as
in the real BFM -- which, with u towards +x and v towards +y, makes the right-hand-rule normal
point into the head.

The mouth is a slit between the two "lip rows" ``lip_row`` (lower lip) and ``lip_row + 1``
(upper lip) over the columns ``mouth_cols[0]..mouth_cols[1]`` (the two mouth corners). The
triangles of that strip are left out of ``tri`` and form ``tri_mouth``: without them the mouth is
a hole, with them the UV square is tiled exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_VERTICES = 900
MIN_MOUTH_CELLS = 4  # tri_mouth gets 2 triangles per cell; face3d's layout needs at least 7


@dataclass(frozen=True)
class FaceGrid:
    """Topology and UV layout of the row grid (0-based indices).

    Attributes:
        counts: (nv,) vertices per row, bottom row first.
        starts: (nv,) index of each row's first vertex.
        row: (n,) row of each vertex; col: (n,) position of the vertex in its row.
        uv: (n, 2) float64 in [0, 1], u right, v up.
        tri: (m, 3) int32 face triangles; tri_mouth: (k, 3) int32 mouth-slit triangles.
        lip_row: the lower-lip row (the upper lip is ``lip_row + 1``); both have the same count.
        mouth_cols: (left, right) columns of the mouth corners on the lip rows.
    """

    counts: np.ndarray
    starts: np.ndarray
    row: np.ndarray
    col: np.ndarray
    uv: np.ndarray
    tri: np.ndarray
    tri_mouth: np.ndarray
    lip_row: int
    mouth_cols: tuple[int, int]

    @property
    def n_vertices(self) -> int:
        return int(self.counts.sum())

    @property
    def n_rows(self) -> int:
        return len(self.counts)

    def index(self, row: int, col: int) -> int:
        """Vertex index of column ``col`` of row ``row``."""
        return int(self.starts[row] + col)


def row_counts(n_vertices: int, v_lip: float) -> tuple[np.ndarray, int]:
    """Vertices per row (bottom first) summing exactly to ``n_vertices``, and the lower-lip row.

    About sqrt(n) rows of m or m + 1 vertices; the longer rows are spread evenly over the grid
    but never fall on the two lip rows, which must match column for column.
    """
    if n_vertices < MIN_VERTICES:
        raise ValueError(f"n_vertices must be at least {MIN_VERTICES}, got {n_vertices}")
    base = int(round(np.sqrt(n_vertices)))
    for nv in (base, base + 1, base - 1, base + 2, base - 2):
        per_row, extra = divmod(n_vertices, nv)
        if extra <= nv - 2:
            break
    else:  # pragma: no cover - one of five neighbouring row counts always works
        raise ValueError(f"cannot lay out {n_vertices} vertices on a grid")
    lip_row = int(np.clip(np.floor(v_lip * (nv - 1)), 1, nv - 3))
    counts = np.full(nv, per_row, dtype=np.int64)
    eligible = np.array([j for j in range(nv) if j not in (lip_row, lip_row + 1)])
    if extra:
        pick = np.round(np.linspace(0, len(eligible) - 1, extra)).astype(np.int64)
        counts[eligible[pick]] += 1
    return counts, lip_row


def _zipper(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Clockwise (u right, v up) triangles joining two rows of evenly spaced vertices.

    ``lower`` and ``upper`` are the vertex indices of the rows, left to right; both rows span
    u in [0, 1]. Returns (len(lower) + len(upper) - 2, 3) int64.
    """
    p, q = len(lower) - 1, len(upper) - 1
    out = np.empty((p + q, 3), dtype=np.int64)
    i = j = 0
    for t in range(p + q):
        # advance along the lower row while its next vertex is not right of the upper one's
        if j == q or (i < p and (i + 1) * q <= (j + 1) * p):
            out[t] = (lower[i], upper[j], lower[i + 1])
            i += 1
        else:
            out[t] = (lower[i], upper[j], upper[j + 1])
            j += 1
    return out


#: Amplitude of the monotone, endpoint-fixing warp of the UV grid: 0.37 of a 256-pixel UV pixel.
UV_WOBBLE = 0.37 / 255


def build_grid(n_vertices: int, v_lip: float, mouth_half_width_u: float) -> FaceGrid:
    """The grid for ``n_vertices`` with the lip line near ``v = v_lip``.

    The mouth corners are the lip-row columns nearest ``u = 0.5 -/+ mouth_half_width_u``; the slit
    is at least :data:`MIN_MOUTH_CELLS` cells wide.
    """
    counts, lip_row = row_counts(n_vertices, v_lip)
    nv = len(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    row = np.repeat(np.arange(nv), counts)
    col = np.arange(n_vertices) - starts[row]
    uv = np.column_stack([col / (counts[row] - 1), row / (nv - 1)]).astype(np.float64)
    # Keep grid lines off UV pixel centres: a regular grid puts whole rows of centres exactly on
    # shared edges, which face3d's half-open coverage rule (u + v < 1) can leave uncovered.
    uv += UV_WOBBLE * np.sin(np.pi * uv)

    m = int(counts[lip_row])
    half = max(int(round(mouth_half_width_u * (m - 1))), (MIN_MOUTH_CELLS + 1) // 2)
    centre = (m - 1) / 2.0
    left = int(np.floor(centre - half + 0.5))
    right = int(np.ceil(centre + half - 0.5))
    if right - left < MIN_MOUTH_CELLS or left < 1 or right > m - 2:
        raise ValueError(f"grid of {n_vertices} vertices is too coarse for the mouth slit")

    tri_parts, mouth = [], None
    for j in range(nv - 1):
        lower = starts[j] + np.arange(counts[j])
        upper = starts[j + 1] + np.arange(counts[j + 1])
        strip = _zipper(lower, upper)
        if j == lip_row:
            cols = col[strip]
            in_slit = np.all((cols >= left) & (cols <= right), axis=1)
            mouth = strip[in_slit]
            strip = strip[~in_slit]
        tri_parts.append(strip)
    tri = np.vstack(tri_parts).astype(np.int32)
    vertices = dict(counts=counts, starts=starts, row=row, col=col, uv=uv)
    mouth_slit = dict(lip_row=lip_row, mouth_cols=(left, right))
    return FaceGrid(**vertices, tri=tri, tri_mouth=mouth.astype(np.int32), **mouth_slit)
