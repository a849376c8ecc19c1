"""Generated principal components for any face mesh in BFM orientation and scale.

The licensed BFM's components cannot ship, so the project makes its own from the mean shape and
the 68 key vertices alone (:class:`~uvgen.synth.face_regions.FaceFrame`): the same code serves the
embedded mesh and the real BFM topology (which comes without components).

Conventions (as in face3d's BFM): ``v = shapeMU + expMU + shapePC @ a + expPC @ b`` with the
parameters used as stored, and ``tex = texMU + texPC @ t``.

* Shape and texture components are orthogonal columns of norm sqrt(n / 53215), i.e. orthonormal
  on the real model's 53,215 vertices and with the same per-vertex effect on any other mesh: a
  parameter a moves each coordinate by about a / 400 units (RMS). The standard deviations
  ``shape_ev`` fall from 5e5 to 2e2 and ``tex_ev`` from 4.6e3 to 30, matching the spread of real
  300W-LP fits; a ~ N(0, shape_ev^2) changes the face by about 2,000 units RMS (1-2 % of its
  size), t ~ N(0, tex_ev^2) its colour by about 20 levels of 255.
* Shape components, in order of decreasing variance: face width, height, depth, nose size,
  jaw width, chin, eye spacing, brow ridge, mouth width, lip fullness, nose width, cheekbones,
  forehead slope, eye depth, lower-face length, asymmetry, nose bridge, mid-face; then smooth
  random fields (low-frequency cosines of x and y along x, y or z, mixed by the seed), made
  orthogonal to everything before them.
* Expression components are not normalised: column k is the displacement for b_k = 1, and
  ``exp_ev`` (1.8 falling to 0.14, like real fits' Exp_Para) is the standard deviation of b_k.
  Order: mouth open (jaw rotates down: inner lips part by about 5,000 units per unit, 9,000 at
  one standard deviation), smile, brows raised, pucker, frown, eyes closing, mouth stretch, jaw
  sideways, one-sided smile, upper lip raise, mouth corners down, cheek puff, nose wrinkle, lips
  rolled in, squint; then smooth random fields local to the mouth, eyes, brows, nose and cheeks
  (about 1,500 units per unit). A negative mouth-open value closes the lips past each other
  (the mean leaves them about 3,000 units apart): draw that one as |N(0, exp_ev_0^2)|, as
  :func:`uvgen.synth.facemodel.sample_parameters` does.

Everything is deterministic: the semantic components depend only on the mesh, the random ones on
the seed too (numpy's default_rng).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.linalg import solve_triangular

from uvgen.synth.face_regions import (
    FaceFrame,
    cosine_patterns,
    gaussian,
    harmonic_weight,
    mouth_arcs,
    smoothstep,
)
from uvgen.synth.face_texture import colour_fields, texture_fields, texture_mean

REFERENCE_N = 53215  # the real trimmed BFM's vertex count: columns are orthonormal there
MOUTH_OPEN = 0  # index of the mouth-opening expression component
MOUTH_OPEN_PER_UNIT = 5000.0  # how far the lower inner lip moves for b[MOUTH_OPEN] = 1

_SHAPE_EV_LOG10 = (
    (0, 5.7),
    (1, 5.52),
    (2, 5.4),
    (4, 5.25),
    (9, 5.05),
    (19, 4.5),
    (39, 4.2),
    (59, 3.7),
    (99, 3.35),
    (149, 2.7),
    (198, 2.3),
)
_EXP_EV = (
    (0, 1.8),
    (1, 1.3),
    (2, 0.9),
    (3, 0.85),
    (4, 0.5),
    (6, 0.42),
    (9, 0.38),
    (12, 0.3),
    (15, 0.25),
    (20, 0.18),
    (28, 0.14),
)
_TEX_EV = (
    (0, 4600.0),
    (1, 3800.0),
    (2, 3500.0),
    (3, 2300.0),
    (4, 1900.0),
    (9, 900.0),
    (19, 470.0),
    (39, 330.0),
    (99, 100.0),
    (198, 30.0),
)


@dataclass(frozen=True)
class Components:
    """Generated components of one mean face (n vertices; float32 matrices, float64 vectors).

    shape_pc (3n, n_shape), shape_ev (n_shape, 1), exp_pc (3n, n_exp), exp_ev (n_exp, 1),
    tex_mu (3n, 1) in [0, 255], tex_pc (3n, n_shape), tex_ev (n_shape, 1).
    """

    shape_pc: np.ndarray
    shape_ev: np.ndarray
    exp_pc: np.ndarray
    exp_ev: np.ndarray
    tex_mu: np.ndarray
    tex_pc: np.ndarray
    tex_ev: np.ndarray

    def __iter__(self):
        """Unpack as (shape_pc, shape_ev, exp_pc, exp_ev, tex_mu, tex_pc, tex_ev)."""
        return (getattr(self, f.name) for f in fields(self))

    def as_model_fields(self) -> dict[str, np.ndarray]:
        """The components keyed by their MorphableModel field names (the arrays, not copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def shape_ev_profile(count: int = 199) -> np.ndarray:
    """(count, 1) shape standard deviations (5e5 falling to 2e2)."""
    idx, lg = np.array(_SHAPE_EV_LOG10).T
    return (10.0 ** np.interp(np.arange(count), idx, lg)).reshape(-1, 1)


def exp_ev_profile(count: int = 29) -> np.ndarray:
    """(count, 1) expression standard deviations (1.8 falling to 0.14)."""
    idx, val = np.array(_EXP_EV).T
    return np.exp(np.interp(np.arange(count), idx, np.log(val))).reshape(-1, 1)


def tex_ev_profile(count: int = 199) -> np.ndarray:
    """(count, 1) texture standard deviations (4.6e3 falling to 30)."""
    idx, val = np.array(_TEX_EV).T
    return np.exp(np.interp(np.arange(count), idx, np.log(val))).reshape(-1, 1)


# ---------------------------------------------------------------------------------------------
# Smooth fields
# ---------------------------------------------------------------------------------------------


def cosine_fields(
    vertices: np.ndarray, count: int, rng: np.random.Generator, out: np.ndarray | None = None
) -> np.ndarray:
    """(n, 3, count) smooth random displacement fields: the patterns of
    :func:`~uvgen.synth.face_regions.cosine_patterns` (one per three fields), each along x, y and
    z, mixed in blocks of 12 by random rotations from ``rng``. Written into ``out`` if given."""
    patterns = cosine_patterns(vertices, -(-count // 3), rng)
    if out is None:
        out = np.empty((len(vertices), 3, count))
    out[...] = 0.0
    for k in range(count):
        out[:, k % 3, k] = patterns[:, k // 3]
    for start in range(0, count, 12):
        stop = min(start + 12, count)
        q, r = np.linalg.qr(rng.standard_normal((stop - start, stop - start)))
        out[:, :, start:stop] = out[:, :, start:stop] @ (q * np.sign(np.diag(r)))
    return out


def orthonormal_columns(fields: np.ndarray, n_vertices: int, chunk: int = 1 << 15) -> np.ndarray:
    """(3n, k) float32: the fields (n, 3, k) flattened and orthogonalised in order (Gram-Schmidt:
    column j is field j minus its part along fields 0..j-1), each of norm sqrt(n / 53215).

    Computed as a Cholesky QR (k x k Gram matrix, triangular inverse, one product, done in row
    chunks straight into float32): exact to about cond^2 * 1e-16, ample for the
    well-conditioned fields here (cond < 1e3).
    """
    k = fields.shape[2]
    mat = fields.reshape(3 * n_vertices, k)
    scale = 1.0 / np.linalg.norm(mat, axis=0)
    gram = (mat.T @ mat) * np.outer(scale, scale)
    upper = np.linalg.cholesky(gram).T
    inv = solve_triangular(upper, np.eye(k), lower=False) * scale[:, None]
    inv *= np.sqrt(n_vertices / REFERENCE_N)
    out = np.empty(mat.shape, dtype=np.float32)
    for start in range(0, len(mat), chunk):
        out[start : start + chunk] = mat[start : start + chunk] @ inv
    return out


# ---------------------------------------------------------------------------------------------
# Shape (identity)
# ---------------------------------------------------------------------------------------------


def _lower_face(v: np.ndarray, f: FaceFrame) -> np.ndarray:
    """0 above the mouth, rising to 1 at the chin."""
    return smoothstep((f.mouth[1] - v[:, 1]) / max(f.mouth[1] - f.chin[1], 1e-9))


def _both(v: np.ndarray, right: np.ndarray, left: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return gaussian(v, right, sx, sy) + gaussian(v, left, sx, sy)


def shape_semantic_fields(v: np.ndarray, f: FaceFrame) -> np.ndarray:
    """(n, 3, 18) identity deformations (unnormalised), in the documented order."""
    iod, x = f.iod, v[:, 0] - f.x0
    side = np.tanh(x / (0.1 * iod))  # smooth sign of the side of the face
    centre_y = 0.5 * (0.5 * (f.eye_r[1] + f.eye_l[1]) + f.mouth[1])
    zc = float(np.median(v[:, 2]))
    lower = _lower_face(v, f)
    nose_mid = 0.5 * (f.nasion + f.nose_tip)
    g_nose = gaussian(v, nose_mid, 0.22 * iod, 0.4 * iod) * f.front(v, 0.6)
    g_nose_low = gaussian(v, f.nose_tip + [0, -0.08 * iod, 0], 0.2 * iod, 0.15 * iod) * f.front(
        v, 0.6
    )
    g_eyes = _both(v, f.eye_r, f.eye_l, 0.25 * iod, 0.2 * iod) * f.front(v, 1.0)
    brow_y = 0.5 * (f.brow_r[1] + f.brow_l[1])
    g_brow = gaussian(v, [f.x0, brow_y], 0.75 * iod, 0.12 * iod) * f.front(v, 1.0)
    g_mouth = gaussian(v, f.mouth, 0.5 * iod, 0.3 * iod) * f.front(v, 0.8)
    g_lips = gaussian(v, f.mouth, 0.35 * iod, 0.15 * iod) * f.front(v, 0.6)
    cheek_y = f.nose_tip[1] + 0.1 * iod
    g_cheek_r = gaussian(v, [f.x0 - 0.72 * iod, cheek_y], 0.3 * iod, 0.3 * iod) * f.front(v, 1.2)
    g_cheek_l = gaussian(v, [f.x0 + 0.72 * iod, cheek_y], 0.3 * iod, 0.3 * iod) * f.front(v, 1.2)
    above_brow = smoothstep((v[:, 1] - brow_y) / (0.8 * iod))
    g_bridge = gaussian(v, f.nasion, 0.12 * iod, 0.25 * iod) * f.front(v, 0.6)
    g_mid = gaussian(v, [f.x0, cheek_y], 0.9 * iod, 0.5 * iod) * f.front(v, 1.2)
    g_chin = gaussian(v, f.chin + [0, 0.15 * iod, 0], 0.45 * iod, 0.3 * iod)
    zero = np.zeros(len(v))

    def vec(dx, dy, dz) -> np.ndarray:
        return np.column_stack([dx + zero, dy + zero, dz + zero])

    fields = [
        vec(x, 0, 0),  # face width
        vec(0, v[:, 1] - centre_y, 0),  # face height
        vec(0, 0, v[:, 2] - zc),  # face depth
        vec(0, -0.3 * g_nose * iod, g_nose * iod),  # nose size
        vec(x * lower, 0, 0),  # jaw width
        vec(0, -0.6 * g_chin * iod, g_chin * iod),  # chin
        vec(side * g_eyes * iod, 0, 0),  # eye spacing
        vec(0, 0.3 * g_brow * iod, g_brow * iod),  # brow ridge
        vec((v[:, 0] - f.mouth[0]) * g_mouth, 0, 0),  # mouth width
        vec(0, 0, g_lips * iod),  # lip fullness
        vec(x * g_nose_low, 0, 0),  # nose width
        vec(
            -0.5 * g_cheek_r * iod + 0.5 * g_cheek_l * iod, 0, (g_cheek_r + g_cheek_l) * iod
        ),  # cheekbones
        vec(0, 0, -above_brow * iod),  # forehead slope
        vec(0, 0, g_eyes * iod),  # eye depth
        vec(0, -lower * iod, 0),  # lower-face length
        vec(0, 0, x * f.front(v, 1.2)),  # asymmetry
        vec(0, 0, g_bridge * iod),  # nose bridge
        vec(0, 0, g_mid * iod),  # mid-face
    ]
    return np.stack(fields, axis=2)


# ---------------------------------------------------------------------------------------------
# Expression
# ---------------------------------------------------------------------------------------------


def jaw_weight(v: np.ndarray, f: FaceFrame, tri: np.ndarray | None = None) -> np.ndarray:
    """(n,) how much each vertex moves with the lower jaw, 1 on the lower lip and chin, 0 on the
    upper lip and above the nose base, fading out on the neck below the chin.

    With the triangles ``tri`` (whose mouth hole separates the lips) it is the harmonic
    interpolation over the mesh between the lower lip edge, the chin and the jaw in front of the
    joints (1) and the upper lip edge, everything above the base of the nose and everything behind
    the joints (0): smooth everywhere except at the mouth corners. Without ``tri`` (or without a
    mouth hole) it is a geometric stand-in: a sigmoid across the line between the inner lips,
    sharp between the lips and widening into a smooth blend over the cheeks.
    """
    iod = f.iod
    z_joint = f.nose_tip[2] - 1.7 * iod
    neck = 1.0 - smoothstep((f.chin[1] - 0.1 * iod - v[:, 1]) / (0.6 * iod))
    arcs = mouth_arcs(v, tri, f) if tri is not None else None
    if arcs is not None:
        upper, lower = arcs
        ones = (v[:, 1] <= f.mouth[1] - 0.35 * iod) & (v[:, 2] >= z_joint + 0.4 * iod)
        zeros = (v[:, 1] >= f.subnasale[1]) | (v[:, 2] <= z_joint - 0.2 * iod)
        ones[lower] = True
        zeros[lower] = False
        zeros[upper] = True
        ones[upper] = False
        return harmonic_weight(v, tri, ones, zeros) * neck
    hw = f.mouth_half_width
    gap = max(float(f.lip_upper[1] - f.lip_lower[1]), 0.01 * iod)
    lateral = np.abs(v[:, 0] - f.mouth[0]) / hw
    tau = gap / 6.0 + 0.3 * iod * smoothstep((lateral - 0.6) / 0.9)
    w = 1.0 / (1.0 + np.exp(-np.clip((f.lip_line(v[:, 0]) - v[:, 1]) / tau, -60.0, 60.0)))
    return w * neck


def _mouth_open(v: np.ndarray, f: FaceFrame, jaw: np.ndarray) -> np.ndarray:
    """Jaw drop: rotation about an axis through the jaw joints (eye height, 1.7 iod behind the
    nose tip) plus a downward slide, scaled so the lower inner lip moves MOUTH_OPEN_PER_UNIT."""
    iod = f.iod
    y_p = 0.5 * (f.eye_r[1] + f.eye_l[1]) - 0.1 * iod
    z_p = f.nose_tip[2] - 1.7 * iod
    rot = np.column_stack([np.zeros(len(v)), -(v[:, 2] - z_p), v[:, 1] - y_p]) / iod
    d = (rot + np.array([0.0, -1.0, 0.0])) * jaw[:, None]
    ref = np.array([[0.0, -(f.lip_lower[2] - z_p), f.lip_lower[1] - y_p]]) / iod + [0.0, -1.0, 0.0]
    return d * (MOUTH_OPEN_PER_UNIT / np.linalg.norm(ref))


def expression_semantic_fields(
    v: np.ndarray, f: FaceFrame, tri: np.ndarray | None = None
) -> np.ndarray:
    """(n, 3, 15) expression displacements for a parameter of 1 (units as the mesh); ``tri``
    refines the jaw weight (see :func:`jaw_weight`)."""
    iod = f.iod
    n = len(v)
    x = v[:, 0] - f.mouth[0]
    side = np.tanh((v[:, 0] - f.x0) / (0.1 * iod))
    corners_r = gaussian(v, f.corner_r, 0.2 * iod, 0.2 * iod) * f.front(v, 0.9)
    corners_l = gaussian(v, f.corner_l, 0.2 * iod, 0.2 * iod) * f.front(v, 0.9)
    corners = corners_r + corners_l
    cheek_y = f.nose_tip[1]
    cheeks = _both(
        v, [f.x0 - 0.5 * iod, cheek_y], [f.x0 + 0.5 * iod, cheek_y], 0.25 * iod, 0.25 * iod
    )
    cheeks = cheeks * f.front(v, 1.0)
    brow_y = 0.5 * (f.brow_r[1] + f.brow_l[1])
    brows = gaussian(v, [f.x0, brow_y + 0.05 * iod], 0.75 * iod, 0.2 * iod) * f.front(v, 1.0)
    inner_brows = _both(
        v, [f.x0 - 0.3 * iod, brow_y], [f.x0 + 0.3 * iod, brow_y], 0.15 * iod, 0.12 * iod
    )
    inner_brows = inner_brows * f.front(v, 0.8)
    lips = gaussian(v, f.mouth, 0.3 * iod, 0.15 * iod) * f.front(v, 0.6)
    mouth = gaussian(v, f.mouth, 0.45 * iod, 0.22 * iod) * f.front(v, 0.8)
    eye_h = 0.06 * iod
    lids_up = _both(
        v, f.eye_r + [0, 0.05 * iod, 0], f.eye_l + [0, 0.05 * iod, 0], 0.15 * iod, eye_h
    )
    lids_lo = _both(
        v, f.eye_r - [0, 0.06 * iod, 0], f.eye_l - [0, 0.06 * iod, 0], 0.15 * iod, eye_h
    )
    lids_up, lids_lo = lids_up * f.front(v, 0.7), lids_lo * f.front(v, 0.7)
    puff = _both(
        v,
        [f.x0 - 0.55 * iod, f.mouth[1] + 0.1 * iod],
        [f.x0 + 0.55 * iod, f.mouth[1] + 0.1 * iod],
        0.25 * iod,
        0.25 * iod,
    ) * f.front(v, 1.2)
    wrinkle = gaussian(v, 0.5 * (f.nasion + f.nose_tip), 0.15 * iod, 0.2 * iod) * f.front(v, 0.5)
    jaw = jaw_weight(v, f, tri)
    upper = (1.0 - jaw) * gaussian(v, f.mouth + [0, 0.1 * iod, 0], 0.35 * iod, 0.15 * iod)
    zero = np.zeros(n)
    k = 1000.0

    def vec(dx, dy, dz) -> np.ndarray:
        return np.column_stack([dx + zero, dy + zero, dz + zero])

    fields = [
        _mouth_open(v, f, jaw),
        vec(
            4 * k * 0.6 * (corners_l - corners_r),
            4 * k * 0.8 * corners + 1.5 * k * cheeks,
            -1.2 * k * corners + 0.75 * k * cheeks,
        ),  # smile
        vec(0, 3 * k * brows, 0),  # brows raised
        vec(-3 * k * lips * np.clip(x / (0.3 * iod), -1, 1), 0, 3 * k * lips),  # pucker
        vec(-2.5 * k * 0.5 * side * inner_brows, -2.5 * k * inner_brows, 0),  # frown
        vec(0, -3 * k * lids_up, 0),  # eyes closing
        vec(
            3 * k * mouth * np.clip(x / (0.3 * iod), -1.5, 1.5), 0, -0.5 * k * mouth
        ),  # mouth stretch
        vec(3 * k * jaw, 0, 0),  # jaw sideways
        vec(
            4 * k * 0.6 * corners_l, 4 * k * 0.8 * corners_l, -1.2 * k * corners_l
        ),  # one-sided smile
        vec(0, 2 * k * upper, 0.6 * k * upper),  # upper lip raise
        vec(0, -3 * k * corners, 0),  # mouth corners down
        vec(3 * k * side * puff, 0, 1.5 * k * puff),  # cheek puff
        vec(0, 1.5 * k * wrinkle, 0.5 * k * wrinkle),  # nose wrinkle
        vec(0, 0, -2 * k * lips),  # lips rolled in
        vec(0, 1.5 * k * lids_lo, 0),  # squint
    ]
    return np.stack(fields, axis=2)


def expression_random_fields(
    v: np.ndarray, f: FaceFrame, count: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, 3, count) smooth random local motions of about 1,500 units at their peak."""
    iod = f.iod
    anchors = [
        f.mouth,
        f.eye_r,
        f.eye_l,
        f.brow_r,
        f.brow_l,
        f.nose_tip,
        f.chin,
        np.array([f.x0 - 0.5 * iod, f.nose_tip[1], 0]),
        np.array([f.x0 + 0.5 * iod, f.nose_tip[1], 0]),
    ]
    out = np.zeros((len(v), 3, count))
    if count == 0:
        return out
    waves = cosine_fields(v, 3 * count, rng)
    for k in range(count):
        centre = anchors[rng.integers(len(anchors))]
        window = gaussian(v, centre, 0.3 * iod, 0.25 * iod) * f.front(v, 1.0)
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        d = waves[:, :, 3 * k] * window[:, None] + 0.5 * np.outer(window, direction)
        out[:, :, k] = d * (1500.0 / max(np.abs(d).max(), 1e-12))
    return out


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------


def make_components(
    mean_vertices: np.ndarray,
    kpt_ind: np.ndarray,
    segbin: np.ndarray,
    seed: int,
    n_shape: int = 199,
    n_exp: int = 29,
    tri: np.ndarray | None = None,
) -> Components:
    """Shape, expression and texture components for the mean face ``mean_vertices`` (n, 3).

    ``kpt_ind`` (68,) 0-based iBUG-68 key vertices anchor the fields and ``segbin`` (4, n) (nose,
    eyes, mouth, rest) confines the painted features of the mean texture; the mesh must be in BFM
    orientation and scale (x to the subject's left, y up, z towards the viewer). The face
    triangles ``tri`` (m, 3) 0-based, without the mouth triangles, are optional: with them the
    jaw moves exactly the vertices on the lower side of the mouth hole (needed for meshes like
    the real BFM, whose lip edges interleave in height). See the module docstring for the scales
    and the order. Returns :class:`Components` (unpacks as the 7-tuple of its fields).
    """
    v = np.asarray(mean_vertices, dtype=np.float64)
    n = len(v)
    kpt_ind = np.asarray(kpt_ind, dtype=np.int64)
    segbin = np.asarray(segbin)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"mean_vertices must be (n, 3), got {v.shape}")
    if kpt_ind.shape != (68,) or kpt_ind.min() < 0 or kpt_ind.max() >= n:
        raise ValueError("kpt_ind must be 68 vertex indices in range")
    if segbin.shape != (4, n):
        raise ValueError(f"segbin must be (4, {n}), got {segbin.shape}")
    rng = np.random.default_rng(seed)
    f = FaceFrame.from_mesh(v, kpt_ind)

    semantic = shape_semantic_fields(v, f)[:, :, :n_shape]
    shape = np.empty((n, 3, n_shape))
    shape[:, :, : semantic.shape[2]] = semantic
    cosine_fields(v, n_shape - semantic.shape[2], rng, out=shape[:, :, semantic.shape[2] :])
    shape_pc = orthonormal_columns(shape, n)
    del shape, semantic

    if tri is not None:
        tri = np.asarray(tri, dtype=np.int64)
        if tri.ndim != 2 or tri.shape[1] != 3 or tri.min() < 0 or tri.max() >= n:
            raise ValueError("tri must be (m, 3) vertex indices in range")
    exp_sem = expression_semantic_fields(v, f, tri)[:, :, :n_exp]
    exp = np.concatenate(
        [exp_sem, expression_random_fields(v, f, n_exp - exp_sem.shape[2], rng)], axis=2
    )
    exp_pc = exp.reshape(3 * n, n_exp).astype(np.float32)

    tex_mu = texture_mean(v, f, segbin).reshape(3 * n, 1)
    tex = texture_fields(v, f)[:, :, :n_shape]
    tex = np.concatenate([tex, colour_fields(v, n_shape - tex.shape[2], rng)], axis=2)
    tex_pc = orthonormal_columns(tex, n)
    del tex

    return Components(
        shape_pc=shape_pc,
        shape_ev=shape_ev_profile(n_shape),
        exp_pc=exp_pc,
        exp_ev=exp_ev_profile(n_exp),
        tex_mu=tex_mu,
        tex_pc=tex_pc,
        tex_ev=tex_ev_profile(n_shape),
    )
