"""The embedded face model's mean shape: a parametric head-front surface with facial relief.

Units and axes are the trimmed BFM's (about 180,000 x 211,000 x 148,000 units for the mean face):
x to the subject's left (image right in a frontal view), y up, z towards the viewer; the nose tip
has the largest z. Grid parameter u runs from the subject's right ear (u = 0, x < 0) to the left
ear (u = 1); v from the bottom of the neck (v = 0) to the top of the forehead (v = 1).

Construction, in three layers:

1. Base sheet. Each grid row v is an arc around the head: it starts at the midline point
   (0, yf(v), zf(v)) of a smooth front profile (neck, chin, lips, cheeks level, brow, forehead;
   v proportional to arc length along it) and bends back to a side edge (+-a, y_edge, z_edge)
   along a superellipse, ``theta = pi (u - 1/2)`` being the angle around the vertical.
2. Mouth slit. The two lip rows of the grid are pinched together onto the lip line, leaving a
   small gap (lips at rest, slightly parted in the middle) so the mouth can open.
3. Relief. Gaussian bumps and dents, displacing along +z and faded where the base sheet does
   not face the viewer: nose (bridge, tip, alae), brow ridge, eye sockets and eyeballs,
   cheekbones, dental arch, lips, chin; and ears pushed out along x at the side edges.

The mean shape does not depend on any seed. Numbers below are in thousands of units.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from uvgen.synth.face_grid import FaceGrid, build_grid

K = 1000.0  # knot tables are in thousands of BFM units

# Front (midline) profile without nose, lips and chin relief, neck to forehead: (y, z).
_MIDLINE = np.array(
    [
        (-114.0, 45.0),
        (-104.0, 49.5),
        (-95.0, 54.0),
        (-88.5, 58.5),
        (-84.5, 65.0),
        (-82.0, 74.0),
        (-79.5, 85.0),
        (-75.5, 96.0),
        (-68.0, 103.0),
        (-57.0, 105.5),
        (-45.0, 106.5),
        (-31.0, 109.5),
        (-20.0, 111.5),
        (-10.0, 111.5),
        (5.0, 109.5),
        (20.0, 107.5),
        (34.0, 106.5),
        (43.0, 106.5),
        (54.0, 108.0),
        (67.0, 107.5),
        (83.0, 104.0),
        (92.0, 101.0),
        (96.6, 99.0),
    ]
)

# Cross-section by midline height yf: (yf, y_edge, z_edge, half width a, superellipse exponent p).
_SECTION = np.array(
    [
        (-114.0, -66.0, -5.0, 54.0, 2.4),
        (-100.0, -62.0, -6.0, 56.0, 2.4),
        (-80.0, -36.0, -13.0, 57.0, 2.5),
        (-42.0, -2.0, -15.0, 67.0, 3.0),
        (0.0, 32.0, -5.0, 72.0, 2.9),
        (31.0, 50.0, 13.0, 76.0, 2.4),
        (69.0, 68.0, 34.0, 72.0, 2.2),
        (92.0, 73.0, 48.0, 65.0, 2.1),
        (96.6, 74.0, 52.0, 64.0, 2.1),
    ]
)

# Nose relief along the midline by height y: (y, amplitude, lateral sigma).
_NOSE = np.array(
    [
        (46.0, 0.0, 5.0),
        (38.0, 1.5, 5.5),
        (34.0, 4.5, 6.5),
        (30.0, 7.0, 7.0),
        (22.0, 12.0, 8.0),
        (15.0, 16.5, 9.3),
        (10.0, 19.5, 10.5),
        (3.0, 22.5, 11.7),
        (-2.0, 20.0, 11.5),
        (-6.0, 14.0, 9.5),
        (-8.5, 8.0, 8.5),
        (-11.0, 3.5, 8.0),
        (-14.0, 0.0, 8.0),
    ]
)
_NOSE_POWER = 3.0  # lateral fall-off exp(-|x / sigma|^3 / 2): flat bridge, steep sides

# Gaussian z-relief (x, y, sigma_x, sigma_y, amplitude); mirrored ones get a twin at -x.
_BUMPS_MIRRORED = np.array(
    [
        (-9.5, -5.5, 4.0, 3.5, 1.5),  # nose alae
        (-19.0, 33.0, 8.0, 7.0, -12.0),  # eye socket
        (-30.5, 34.0, 7.0, 4.5, 2.5),  # eyeball
        (-38.0, 32.0, 8.0, 5.0, -4.5),  # outer eye socket
        (-34.0, 54.0, 14.0, 6.0, 3.2),  # brow ridge
        (-46.0, 8.0, 12.0, 10.0, 3.0),  # cheekbone
        (-60.0, 55.0, 8.0, 12.0, -3.0),  # temple
        (-16.0, -13.0, 7.0, 6.0, -2.0),  # nasolabial fold
        (-24.0, 2.0, 6.0, 10.0, -4.5),  # cheek recess beside the nose
    ]
)
_BUMPS_CENTRE = np.array(
    [
        (0.0, -24.5, 14.0, 3.5, 5.5),  # upper lip
        (0.0, -38.5, 13.0, 3.5, 6.5),  # lower lip
        (0.0, -31.4, 14.0, 2.0, -1.5),  # lips roll in towards the slit
        (0.0, -17.0, 4.0, 5.0, 1.0),  # philtrum
        (0.0, -61.0, 15.0, 8.0, 3.0),  # chin
    ]
)

# Lip line and mouth: centre height, corner drop, corner half-width, parting at centre/corners.
_LIP_Y, _LIP_CORNER_DROP, _MOUTH_HALF_WIDTH = -31.4, 1.8, 23.5
_GAP_CENTRE, _GAP_CORNER = 2.2, 0.35
_PINCH_HEIGHT = 0.05  # in v: how far above/below the lip rows the pinch fades out

# iBUG-68 anatomical target positions on the mean face (x, y, z); x < 0 is the subject's right.
_RIGHT_JAW = [
    (-73.1, 26.3, 17.0),
    (-71.2, 6.4, 19.3),
    (-67.5, -11.6, 21.1),
    (-63.7, -28.0, 24.9),
    (-58.2, -45.3, 34.0),
    (-48.4, -59.2, 50.1),
    (-36.8, -67.4, 69.8),
    (-21.9, -74.1, 88.4),
]
_RIGHT_BROW = [
    (-57.2, 48.1, 79.5),
    (-48.9, 54.5, 91.6),
    (-38.2, 56.7, 99.9),
    (-28.1, 55.7, 105.0),
    (-18.9, 53.2, 107.5),
]
_RIGHT_EYE = [
    (-43.1, 33.6, 86.4),
    (-36.7, 37.7, 94.6),
    (-27.5, 37.8, 94.7),
    (-19.0, 33.4, 92.2),
    (-26.7, 31.2, 94.4),
    (-36.3, 30.8, 92.2),
]


def _mirror(points: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    return [(-x, y, z) for x, y, z in points]


def landmark_targets() -> np.ndarray:
    """(68, 3) float64 iBUG-68 target positions on the mean face, in BFM units.

    The real BFM mean face's landmark layout, made left-right symmetric. Points 0-16: jaw from
    the subject's right (x < 0, image left) round the chin (8) to the left; 17-21 right brow and
    22-26 left brow, x increasing; 27-30 nose bridge down to the tip; 31-35 nostril base, x
    increasing; 36-41 right eye from its outer corner and 42-47 left eye from its inner corner,
    both clockwise in the image (upper lid first); 48-59 outer lip and 60-67 inner lip, clockwise
    in the image from the corner with the smaller x.
    """
    eye_r = _RIGHT_EYE
    eye_l = _mirror([eye_r[3], eye_r[2], eye_r[1], eye_r[0], eye_r[5], eye_r[4]])
    pts = (
        _RIGHT_JAW
        + [(0.0, -78.0, 95.7)]
        + _mirror(_RIGHT_JAW[::-1])
        + _RIGHT_BROW
        + _mirror(_RIGHT_BROW[::-1])
        + [(0.0, 34.1, 110.6), (0.0, 22.1, 119.6), (0.0, 10.1, 128.9), (0.0, -0.1, 131.2)]
        + [
            (-11.9, -9.3, 108.9),
            (-6.9, -10.2, 113.5),
            (0.0, -11.5, 115.5),
            (6.9, -10.2, 113.5),
            (11.9, -9.3, 108.9),
        ]
        + eye_r
        + eye_l
        + [
            (-25.0, -33.6, 98.3),
            (-16.4, -27.6, 109.6),
            (-5.7, -23.8, 115.6),
            (0.0, -25.0, 116.2),
            (5.7, -23.8, 115.6),
            (16.4, -27.6, 109.6),
            (25.0, -33.6, 98.3),
            (15.8, -37.4, 107.7),
            (8.2, -40.1, 112.0),
            (0.0, -40.6, 112.9),
            (-8.2, -40.1, 112.0),
            (-15.8, -37.4, 107.7),
        ]
        + [
            (-23.0, -33.1, 98.9),
            (-7.5, -30.5, 110.3),
            (0.0, -30.4, 112.2),
            (7.5, -30.5, 110.3),
            (23.0, -33.1, 98.9),
            (7.2, -32.1, 110.3),
            (0.0, -32.4, 111.2),
            (-7.2, -32.1, 110.3),
        ]
    )
    out = np.asarray(pts, dtype=np.float64) * K
    assert out.shape == (68, 3)
    return out


class _Profile:
    """Arc-length parametrised midline and the cross-section parameters along it."""

    def __init__(self) -> None:
        knots = _MIDLINE * K
        chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(knots, axis=0), axis=1))])
        y_of_c, z_of_c = (
            PchipInterpolator(chord, knots[:, 0]),
            PchipInterpolator(chord, knots[:, 1]),
        )
        c = np.linspace(0.0, chord[-1], 8001)
        dense = np.column_stack([y_of_c(c), z_of_c(c)])
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
        self._s = arc / arc[-1]
        self._y, self._z = dense[:, 0], dense[:, 1]
        self.length = float(arc[-1])
        sec = _SECTION
        self._section = [
            PchipInterpolator(sec[:, 0] * K, sec[:, i] * (K if i < 4 else 1.0)) for i in range(1, 5)
        ]

    def midline(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(yf, zf) of the base midline at arc fraction v."""
        return np.interp(v, self._s, self._y), np.interp(v, self._s, self._z)

    def v_at_height(self, y):
        """Arc fraction v where the midline is at height y (scalar or array)."""
        return np.interp(y, self._y, self._s)

    def section(self, yf: np.ndarray) -> tuple[np.ndarray, ...]:
        """(y_edge, z_edge, a, p) of the cross-section through midline height yf."""
        return tuple(f(yf) for f in self._section)


_PROFILE = _Profile()


def _base_sheet(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(n, 3) base-sheet points at grid parameters (u, v) (any v, also pinched ones)."""
    yf, zf = _PROFILE.midline(v)
    y_edge, z_edge, a, p = _PROFILE.section(yf)
    theta = np.pi * (u - 0.5)
    back = 1.0 - np.abs(np.cos(theta)) ** (2.0 / p)  # 0 at the midline, 1 at the side edge
    return np.column_stack(
        [a * np.sin(theta), yf + (y_edge - yf) * back, zf + (z_edge - zf) * back]
    )


def _mouth_half_width_u() -> float:
    """Half the mouth width in u at the lip line (superellipse inverted at x = corner)."""
    yf, _ = _PROFILE.midline(np.array([_PROFILE.v_at_height(_LIP_Y * K)]))
    _, _, a, p = _PROFILE.section(yf)
    return float(np.arcsin(min(_MOUTH_HALF_WIDTH * K / a[0], 1.0)) / np.pi)


def face_grid(n_vertices: int) -> FaceGrid:
    """The embedded model's grid for ``n_vertices`` (exactly that many vertices)."""
    return build_grid(n_vertices, float(_PROFILE.v_at_height(_LIP_Y * K)), _mouth_half_width_u())


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _pinched_v(grid: FaceGrid) -> np.ndarray:
    """Grid v with the two lip rows pulled onto the (curved) lip line, slightly parted."""
    u, v = grid.uv[:, 0], grid.uv[:, 1]
    dv = 1.0 / (grid.n_rows - 1)
    lo_row, hi_row = grid.lip_row, grid.lip_row + 1
    v_lo, v_hi = lo_row * dv, hi_row * dv
    left, right = grid.mouth_cols
    m = int(grid.counts[lo_row])
    u_left, u_right = left / (m - 1), right / (m - 1)
    half = 0.5 * (u_right - u_left)
    s = (u - 0.5) / half  # -1 and +1 at the mouth corners
    inside = np.clip(1.0 - s**2, 0.0, 1.0)
    taper = 1.0 - _smoothstep((np.abs(s) - 1.0) / 0.5)  # pinch fades out beside the corners
    v_line = _PROFILE.v_at_height((_LIP_Y - _LIP_CORNER_DROP * np.minimum(s**2, 1.0)) * K)
    gap = (_GAP_CORNER + (_GAP_CENTRE - _GAP_CORNER) * np.sqrt(inside)) * K / _PROFILE.length
    target_lo, target_hi = v_line - 0.5 * gap, v_line + 0.5 * gap
    below = np.clip(1.0 - (v_lo - v) / _PINCH_HEIGHT, 0.0, 1.0) * (v <= v_lo)
    above = np.clip(1.0 - (v - v_hi) / _PINCH_HEIGHT, 0.0, 1.0) * (v >= v_hi)
    return v + taper * (below * (target_lo - v_lo) + above * (target_hi - v_hi))


def _facing(points_uv: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """How much the base sheet faces the viewer at (u, v): clip(normal_z, 0, 1) squared."""
    u, v = points_uv
    h = 1e-4
    du = _base_sheet(u + h, v) - _base_sheet(u - h, v)
    dv = _base_sheet(u, v + h) - _base_sheet(u, v - h)
    n = np.cross(du, dv)
    nz = n[:, 2] / np.maximum(np.linalg.norm(n, axis=1), 1e-12)
    return np.clip(nz, 0.0, 1.0) ** 2


def _gauss(x: np.ndarray, y: np.ndarray, bumps: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    for cx, cy, sx, sy, amp in bumps * K:
        out += amp * np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))
    return out


def _relief(base: np.ndarray, u: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """(n, 3) displacement of the base sheet (at grid columns u) by the facial relief."""
    x, y = base[:, 0], base[:, 1]
    nose = _NOSE * K
    amp = np.interp(y, nose[::-1, 0], nose[::-1, 1], left=0.0, right=0.0)
    sig = np.interp(y, nose[::-1, 0], nose[::-1, 2])
    dz = amp * np.exp(-0.5 * np.abs(x / sig) ** _NOSE_POWER)
    mirrored = np.vstack([_BUMPS_MIRRORED, _BUMPS_MIRRORED * [-1, 1, 1, 1, 1]])
    dz += _gauss(x, y, mirrored) + _gauss(x, y, _BUMPS_CENTRE)
    # dental arch: the mouth region curves back towards the corners
    arch = (1.0 - np.exp(-0.5 * (x / (18.0 * K)) ** 2)) * np.exp(
        -0.5 * ((y + 33.0 * K) / (14.0 * K)) ** 2
    )
    dz -= 7.0 * K * arch
    out = np.zeros_like(base)
    out[:, 2] = dz * facing
    # ears: the side edges bulge outwards around eye-to-nose height
    side = _smoothstep((np.abs(2.0 * u - 1.0) - 0.7) / 0.3)
    ear = 16.0 * K * side * np.exp(-0.5 * ((y - 10.0 * K) / (16.0 * K)) ** 2)
    out[:, 0] = np.sign(x) * ear
    return out


def mean_shape(grid: FaceGrid) -> np.ndarray:
    """(n, 3) float64 mean-face vertices on ``grid`` in BFM units (see the module docstring)."""
    u = grid.uv[:, 0]
    v = _pinched_v(grid)
    base = _base_sheet(u, v)
    return base + _relief(base, u, _facing((u, v)))


def select_keypoints(vertices: np.ndarray, grid: FaceGrid) -> np.ndarray:
    """(68,) int32 distinct key vertices of the iBUG-68 scheme (see :func:`landmark_targets`).

    The inner lips 60-67 sit on the mouth slit: 60 and 64 are the upper lip row's corner vertices,
    61-63 further vertices of the upper lip row, 65-67 of the lower lip row (x mirrored in the
    same order as the targets). Every other point is the vertex nearest its target that no earlier
    point took.
    """
    targets = landmark_targets()
    lo, hi = grid.lip_row, grid.lip_row + 1
    left, right = grid.mouth_cols
    centre = 0.5 * (left + right)
    mid = int(np.floor(centre + 0.5))
    off = max(1, int(round(0.33 * 0.5 * (right - left))))
    c_r, c_l = max(left + 1, min(mid - 1, mid - off)), min(right - 1, max(mid + 1, mid + off))
    kpt = np.full(68, -1, dtype=np.int64)
    kpt[60:68] = [
        grid.index(hi, left),
        grid.index(hi, c_r),
        grid.index(hi, mid),
        grid.index(hi, c_l),
        grid.index(hi, right),
        grid.index(lo, c_l),
        grid.index(lo, mid),
        grid.index(lo, c_r),
    ]
    taken = set(kpt[60:68].tolist())
    for i in range(60):
        dist = np.linalg.norm(vertices - targets[i], axis=1)
        near = np.argpartition(dist, 64)[:64]
        for j in near[np.argsort(dist[near], kind="stable")]:
            if int(j) not in taken:
                kpt[i] = j
                taken.add(int(j))
                break
    assert (kpt >= 0).all() and len(taken) == 68
    return kpt.astype(np.int32)
