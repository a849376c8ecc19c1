"""Landmark-anchored face regions for any face mesh in BFM orientation and scale.

:class:`FaceFrame` reads the anatomy (eye centres, mouth, nose, brows, chin) off the 68 key
vertices of a mean shape, so the same region definitions, component fields and texture work on
the embedded mesh and on the real BFM topology alike. Lengths scale with the interocular
distance ``iod`` (about 63,000 units on the BFM mean face). Axes: x to the subject's left, y up,
z towards the viewer.

Also here: the segbin regions, smooth random scalar patterns over a mesh, and the mesh-aware
pieces the jaw needs (the mouth hole's two lip edges, harmonic interpolation over the mesh).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.sparse.linalg import spsolve


@dataclass(frozen=True)
class FaceFrame:
    """Anatomical anchors of one mean face (positions are (3,) float64 in model units)."""

    kpt: np.ndarray  # (68, 3) key-vertex positions
    kpt_index: np.ndarray  # (68,) their vertex indices
    eye_r: np.ndarray  # centre of the subject's right eye (kpt 36-41, x < 0)
    eye_l: np.ndarray  # centre of the left eye (kpt 42-47)
    iod: float  # interocular distance |eye_l - eye_r|
    x0: float  # x of the facial midline
    nose_tip: np.ndarray  # kpt 30
    nasion: np.ndarray  # kpt 27
    subnasale: np.ndarray  # kpt 33
    mouth: np.ndarray  # centre of the inner lips (kpt 60-67)
    corner_r: np.ndarray  # inner mouth corner kpt 60
    corner_l: np.ndarray  # inner mouth corner kpt 64
    lip_upper: np.ndarray  # kpt 62, middle of the upper inner lip
    lip_lower: np.ndarray  # kpt 66, middle of the lower inner lip
    brow_r: np.ndarray  # centre of kpt 17-21
    brow_l: np.ndarray  # centre of kpt 22-26
    chin: np.ndarray  # kpt 8

    @classmethod
    def from_mesh(cls, vertices: np.ndarray, kpt_ind: np.ndarray) -> FaceFrame:
        """Anchors of the mesh ``vertices`` (n, 3) with 0-based ``kpt_ind`` (68,)."""
        k = np.asarray(vertices, dtype=np.float64)[np.asarray(kpt_ind)]
        eye_r, eye_l = k[36:42].mean(0), k[42:48].mean(0)
        return cls(
            kpt=k,
            kpt_index=np.asarray(kpt_ind, dtype=np.int64),
            eye_r=eye_r,
            eye_l=eye_l,
            iod=float(np.linalg.norm(eye_l - eye_r)),
            x0=float(np.mean([0.5 * (eye_r[0] + eye_l[0]), k[30, 0], k[27, 0], k[8, 0]])),
            nose_tip=k[30],
            nasion=k[27],
            subnasale=k[33],
            mouth=k[60:68].mean(0),
            corner_r=k[60],
            corner_l=k[64],
            lip_upper=k[62],
            lip_lower=k[66],
            brow_r=k[17:22].mean(0),
            brow_l=k[22:27].mean(0),
            chin=k[8],
        )

    @property
    def mouth_half_width(self) -> float:
        return 0.5 * float(abs(self.corner_l[0] - self.corner_r[0]))

    def lip_line(self, x: np.ndarray) -> np.ndarray:
        """Height of the line between the lips at x: a parabola through the middle of the inner
        lips and the two inner corners, flat beyond the corners."""
        y_mid = 0.5 * (self.lip_upper[1] + self.lip_lower[1])
        y_corner = 0.5 * (self.corner_r[1] + self.corner_l[1])
        s = np.minimum(((x - self.mouth[0]) / self.mouth_half_width) ** 2, 1.0)
        return y_mid + (y_corner - y_mid) * s

    def front(self, vertices: np.ndarray, depth: float) -> np.ndarray:
        """(n,) float in [0, 1]: 1 for vertices well in front of ``depth`` * iod behind the nose
        tip, 0 well behind it, a smooth step 0.3 iod wide in between (0.5 at the depth)."""
        t = (vertices[:, 2] - (self.nose_tip[2] - depth * self.iod)) / (0.3 * self.iod)
        return smoothstep(t + 0.5)


def smoothstep(t: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, 3t^2 - 2t^3 between."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gaussian(vertices: np.ndarray, centre_xy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """(n,) exp(-((x - cx)^2 / sx^2 + (y - cy)^2 / sy^2) / 2) of the vertices' (x, y)."""
    dx = (vertices[:, 0] - centre_xy[0]) / sx
    dy = (vertices[:, 1] - centre_xy[1]) / sy
    return np.exp(-0.5 * (dx * dx + dy * dy))


def segment_masks(vertices: np.ndarray, frame: FaceFrame) -> dict[str, np.ndarray]:
    """(n,) bool masks of the nose, eyes and mouth regions (disjoint; nose wins over the others).

    Nose: a trapezoid from just above the nasion (half width 0.13 iod) down past the subnasale
    (half width 0.37 iod). Eyes: a band from 0.38 iod below the eye centres to 0.14 iod above the
    brows, 0.95 iod either side of the midline. Mouth: an ellipse 0.67 x 0.25 iod round the lips.
    Only vertices on the front of the face count (within 0.5 / 0.95 / 0.7 iod of the tip's depth).
    """
    x, y = vertices[:, 0] - frame.x0, vertices[:, 1]
    iod = frame.iod
    top, bottom = frame.nasion[1] + 0.1 * iod, frame.subnasale[1] - 0.07 * iod
    t = np.clip((top - y) / (top - bottom), 0.0, 1.0)
    half = (0.13 + 0.24 * t) * iod
    nose = (y <= top) & (y >= bottom) & (np.abs(x) <= half) & (frame.front(vertices, 0.5) >= 0.5)
    eye_y = 0.5 * (frame.eye_r[1] + frame.eye_l[1])
    brow_y = 0.5 * (frame.brow_r[1] + frame.brow_l[1])
    eyes = (
        (y >= eye_y - 0.38 * iod)
        & (y <= brow_y + 0.14 * iod)
        & (np.abs(x) <= 0.95 * iod)
        & (frame.front(vertices, 0.95) >= 0.5)
        & ~nose
    )
    mx = (vertices[:, 0] - frame.mouth[0]) / (0.67 * iod)
    my = (vertices[:, 1] - frame.mouth[1]) / (0.25 * iod)
    mouth = (mx * mx + my * my <= 1.0) & (frame.front(vertices, 0.7) >= 0.5) & ~nose & ~eyes
    return {"nose": nose, "eyes": eyes, "mouth": mouth}


def make_segbin(vertices: np.ndarray, kpt_ind: np.ndarray) -> np.ndarray:
    """(4, n) uint8 one-hot segmentation (rows nose, eyes, mouth, rest) of a mean face."""
    masks = segment_masks(vertices, FaceFrame.from_mesh(vertices, kpt_ind))
    rest = ~(masks["nose"] | masks["eyes"] | masks["mouth"])
    return np.stack([masks["nose"], masks["eyes"], masks["mouth"], rest]).astype(np.uint8)


def cosine_patterns(
    vertices: np.ndarray, count: int, rng: np.random.Generator, block: int = 12
) -> np.ndarray:
    """(n, count) smooth random scalar patterns over the mesh.

    cos(pi fx X) cos(pi fy Y), X and Y the coordinates rescaled to [0, 1] over the bounding box,
    for frequency pairs (fx, fy) != (0, 0) in order of increasing fx^2 + fy^2; consecutive blocks
    of ``block`` patterns are mixed by a random rotation from ``rng``, so the patterns change with
    the seed while spanning the same space, low frequencies first.
    """
    lo, hi = vertices.min(0), vertices.max(0)
    span = np.maximum(hi - lo, 1e-9)
    X = (vertices[:, 0] - lo[0]) / span[0]
    Y = (vertices[:, 1] - lo[1]) / span[1]
    fmax = int(np.ceil(np.sqrt(count + 1))) + 1
    pairs = sorted(
        ((fx, fy) for fx in range(fmax) for fy in range(fmax) if fx or fy),
        key=lambda p: (p[0] ** 2 + p[1] ** 2, p),
    )[:count]
    cx = [np.cos(np.pi * k * X) for k in range(fmax)]
    cy = [np.cos(np.pi * k * Y) for k in range(fmax)]
    out = np.empty((len(vertices), count))
    for k, (fx, fy) in enumerate(pairs):
        out[:, k] = cx[fx] * cy[fy]
    for start in range(0, count, block):
        stop = min(start + block, count)
        q, r = np.linalg.qr(rng.standard_normal((stop - start, stop - start)))
        out[:, start:stop] = out[:, start:stop] @ (q * np.sign(np.diag(r)))
    return out


# ---------------------------------------------------------------------------------------------
# Mesh-aware fields (need the triangles)
# ---------------------------------------------------------------------------------------------


def mesh_edges(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges (e, 2) of the triangles and a (e,) bool: used by one triangle only
    (a boundary edge)."""
    e = np.sort(
        np.vstack([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]).astype(np.int64), axis=1
    )
    edges, counts = np.unique(e, axis=0, return_counts=True)
    return edges, counts == 1


def _graph(vertices: np.ndarray, edges: np.ndarray) -> sparse.csr_matrix:
    length = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    length = np.maximum(length, 1e-9)
    n = len(vertices)
    g = sparse.coo_matrix(
        (np.r_[length, length], (np.r_[edges[:, 0], edges[:, 1]], np.r_[edges[:, 1], edges[:, 0]])),
        shape=(n, n),
    )
    return g.tocsr()


def mouth_arcs(
    vertices: np.ndarray, tri: np.ndarray, frame: FaceFrame
) -> tuple[np.ndarray, np.ndarray] | None:
    """Vertex indices of the upper and lower lip edges of the mouth hole in ``tri``.

    The hole is the boundary loop within 0.5 iod of the mouth centre; it is cut at its two
    vertices of least and greatest x (the corners, which belong to neither arc), and the arc
    nearer (along the mesh) to key point 62 is the upper one. None when ``tri`` has no such loop.
    """
    edges, boundary = mesh_edges(tri)
    b = edges[boundary]
    near = np.linalg.norm(vertices - frame.mouth, axis=1) < 0.5 * frame.iod
    b = b[near[b[:, 0]] & near[b[:, 1]]]
    if len(b) < 4:
        return None
    nbrs: dict[int, list[int]] = {}
    for a, c in b.tolist():
        nbrs.setdefault(a, []).append(c)
        nbrs.setdefault(c, []).append(a)
    if any(len(v) != 2 for v in nbrs.values()):
        return None
    start = min(nbrs, key=lambda i: vertices[i, 0])
    loop, prev, cur = [start], -1, start
    while True:
        nxt = nbrs[cur][0] if nbrs[cur][0] != prev else nbrs[cur][1]
        if nxt == start:
            break
        loop.append(nxt)
        prev, cur = cur, nxt
        if len(loop) > len(nbrs):
            return None
    if len(loop) != len(nbrs):
        return None  # more than one loop near the mouth
    loop = np.array(loop)
    end = int(np.argmax(vertices[loop, 0]))
    arc_a, arc_b = loop[1:end], loop[end + 1 :]
    if len(arc_a) == 0 or len(arc_b) == 0:
        return None
    dist = dijkstra(
        _graph(vertices, edges), indices=int(frame.kpt_index[62]), limit=2.0 * frame.iod
    )
    da, db = np.mean(np.minimum(dist[arc_a], 1e30)), np.mean(np.minimum(dist[arc_b], 1e30))
    return (arc_a, arc_b) if da <= db else (arc_b, arc_a)


def harmonic_weight(
    vertices: np.ndarray, tri: np.ndarray, ones: np.ndarray, zeros: np.ndarray
) -> np.ndarray:
    """(n,) the harmonic interpolation over the mesh of 1 on ``ones`` and 0 on ``zeros`` (bool
    masks): the smoothest field with those values, edges weighted by inverse length. Vertices
    cut off from both sets get 0."""
    edges, _ = mesh_edges(tri)
    length = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    w = 1.0 / np.maximum(length, 1e-9 * max(float(length.max()), 1.0))
    n = len(vertices)
    adj = sparse.coo_matrix(
        (np.r_[w, w], (np.r_[edges[:, 0], edges[:, 1]], np.r_[edges[:, 1], edges[:, 0]])),
        shape=(n, n),
    ).tocsr()
    lap = sparse.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj
    fixed = ones | zeros
    value = ones.astype(np.float64)
    free = np.flatnonzero(~fixed & (np.asarray(adj.sum(axis=1)).ravel() > 0))
    out = value.copy()
    if len(free):
        a = lap[free][:, free]
        a = (a + sparse.diags(np.full(len(free), 1e-9 * float(a.diagonal().mean())))).tocsc()
        rhs = -(lap[free][:, np.flatnonzero(fixed)] @ value[fixed])
        out[free] = np.clip(spsolve(a, rhs), 0.0, 1.0)
    return out
