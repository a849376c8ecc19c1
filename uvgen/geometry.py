"""Pose, projection and crop geometry of a 300W-LP fit (docs/conventions.md section 4).

Coordinate frames:
- model space: BFM units, x to image right in a frontal view, y up, z towards the viewer;
- image space: pixels of the original image, x right, y down (``y_img = h - y - 1``), z kept
  (larger z = closer to the viewer), orthographic;
- crop space: pixels of the 256x256 crop, x right, y down, z scaled like x and shifted so min z = 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

NO_JITTER = (0.5, 0.5, 0.5)

# Plausibility bounds of a fit (a sample outside them is rejected, naming the field). Real data:
# 300W-LP and AFLW2000-3D images are 450x450 with faces of ~60-400 px; s is ~1e-3 (BFM units,
# ~1e5 per head, to pixels); position maps hold crop pixels, within a few hundred px of the crop.
# Pose_Para's angles are periodic and used as stored: 9 real AFLW2000-3D fits hold angles far
# outside [-pi, pi] (image03123: pitch -714, yaw -351, roll -972 degrees; 2.7 turns at most) and
# are good fits, so only angles beyond MAX_TURNS whole turns (no fitter writes those; sin/cos
# would start losing digits) are absurd. docs/conventions.md section 4 says why.
MAX_TURNS = 100
MAX_ANGLE = 2 * np.pi * MAX_TURNS  # |pitch|, |yaw|, |roll| in radians
MIN_IMAGE_SIDE = 32  # px: smaller images cannot hold a face worth a 256x256 crop
MIN_FACE_PX = 8.0  # px: key-point box (mean of width and height) below this is degenerate
MAX_FACE_FACTOR = 4.0  # key-point box above this many times the image's larger side is absurd
MAX_MAP_ABS = 4096.0  # px: |position-map value| beyond this (16 crop widths) is an absurd fit


class GeometryError(ValueError):
    """A sample whose geometry is degenerate or absurd; ``field`` names what to look at."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_pose(pose_para: np.ndarray) -> None:
    """Raise :class:`GeometryError` ('Pose_Para') for non-finite values, an angle beyond
    MAX_TURNS turns or a scale ``s == 0``.

    Angles outside [-pi, pi] are valid (periodic; used as stored). A negative ``s`` is used as
    stored too, as face3d's ``similarity_transform`` does (``s * V @ R.T + t``): it negates x, y
    and z, which is the rotation by pi about z followed by a depth mirror. The one real case,
    AFLW2000-3D's image04157 (s < 0, pitch 894 degrees), lands its key points on ``pt3d_68``
    that way (docs/conventions.md section 4)."""
    p = np.asarray(pose_para, dtype=np.float64).ravel()
    if p.shape != (7,) or not np.all(np.isfinite(p)):
        raise GeometryError("Pose_Para", f"expected 7 finite values, got {p.tolist()}")
    for name, value in zip(("pitch", "yaw", "roll"), p[:3]):
        if abs(value) > MAX_ANGLE:
            raise GeometryError(
                "Pose_Para", f"{name} {value:g} rad lies beyond {MAX_TURNS} turns: not a fit"
            )
    if p[6] == 0:
        raise GeometryError("Pose_Para", "scale s = 0 (a degenerate fit)")


def check_image(image_shape: tuple[int, ...]) -> None:
    """Raise :class:`GeometryError` ('image') for an image smaller than MIN_IMAGE_SIDE."""
    h, w = int(image_shape[0]), int(image_shape[1])
    if min(h, w) < MIN_IMAGE_SIDE:
        raise GeometryError(
            "image", f"{w}x{h} px image is smaller than {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"
        )


def check_face_box(keypoints_xy: np.ndarray, image_shape: tuple[int, ...], field: str) -> None:
    """Raise :class:`GeometryError` (``field``) when the key points' box is not finite, smaller than
    MIN_FACE_PX, larger than MAX_FACE_FACTOR x the image, or entirely outside the image."""
    kpt = np.asarray(keypoints_xy, dtype=np.float64)[:, :2]
    if not np.all(np.isfinite(kpt)):
        raise GeometryError(field, "the 68 key points are not finite")
    (left, top), (right, bottom) = kpt.min(axis=0), kpt.max(axis=0)
    size = ((right - left) + (bottom - top)) / 2
    h, w = int(image_shape[0]), int(image_shape[1])
    if size < MIN_FACE_PX:
        raise GeometryError(
            field,
            f"the 68 key points span {size:.3g} px (fewer than {MIN_FACE_PX:g}): a degenerate face",
        )
    if size > MAX_FACE_FACTOR * max(h, w):
        raise GeometryError(
            field,
            f"the 68 key points span {size:.3g} px, over {MAX_FACE_FACTOR:g}x the {w}x{h} image",
        )
    if right < 0 or bottom < 0 or left > w - 1 or top > h - 1:
        raise GeometryError(
            field,
            f"the face (key points x {left:.4g}..{right:.4g}, y {top:.4g}..{bottom:.4g}) "
            f"lies outside the {w}x{h} image",
        )


def rotation_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """(3, 3) ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)``, angles in radians, each the transpose of the
    textbook rotation (3DDFA's convention)."""
    cx, sx = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    cz, sz = np.cos(roll), np.sin(roll)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, sx], [0.0, -sx, cx]])
    ry = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    rz = np.array([[cz, sz, 0.0], [-sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return rx @ ry @ rz


def umeyama(
    src: np.ndarray, dst: np.ndarray, scale: bool = True
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama 1991) ``dst ~ s * src @ R.T + t`` for (k, D) point pairs,
    D = 2 or 3: (s, R (D, D) a proper rotation (det +1, never a reflection), t (D,)); ``scale``
    False fixes s = 1 (rigid). The one definition of this fit: the crop transform, the head pose
    and the evaluation's rigid alignment all call it."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = (u * d) @ vt
    s = float((sig * d).sum() / ((sc**2).sum() / len(src))) if scale else 1.0
    return s, rot, mu_d - s * rot @ mu_s


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """:func:`umeyama` of two (k >= 3, 3) point sets (ValueError otherwise)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise ValueError(
            f"need two matching (k >= 3, 3) point sets, got {src.shape} and {dst.shape}"
        )
    return umeyama(src, dst)


def rotation_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) radians with ``rotation == rotation_matrix(pitch, yaw, roll)``: yaw in
    [-pi/2, pi/2], pitch and roll in (-pi, pi] (exact inverse on that domain).

    From the product: ``R[0, 2] = -sin(yaw)``, ``R[0, :2] = cos(yaw) (cos roll, sin roll)``,
    ``R[1:, 2] = cos(yaw) (sin pitch, cos pitch)``. At |yaw| = 90 degrees (gimbal lock) roll is
    set to 0 and pitch takes the whole in-plane angle.
    """
    r = np.asarray(rotation, dtype=np.float64)
    sy = float(np.clip(-r[0, 2], -1.0, 1.0))
    cy = float(np.hypot(r[0, 0], r[0, 1]))
    yaw = float(np.arctan2(sy, cy))
    if cy > 1e-9:
        pitch = float(np.arctan2(r[1, 2], r[2, 2]))
        roll = float(np.arctan2(r[0, 1], r[0, 0]))
    else:  # cos(yaw) = 0: R[1] = (sin(pitch) sin(yaw), cos(pitch), 0) with roll = 0
        pitch = float(np.arctan2(r[1, 0] * np.sign(sy), r[1, 1]))
        roll = 0.0
    return pitch, yaw, roll


def transform_vertices(vertices: np.ndarray, pose_para: np.ndarray) -> np.ndarray:
    """Model-space (n, 3) vertices to camera space: ``s * V @ R.T + [tx, ty, tz]``.

    ``pose_para`` = [pitch, yaw, roll (radians), tx, ty, tz, s] as stored in 300W-LP's
    ``Pose_Para``.
    """
    p = np.asarray(pose_para, dtype=np.float64).ravel()
    rot = rotation_matrix(p[0], p[1], p[2])
    return p[6] * (np.asarray(vertices, dtype=np.float64) @ rot.T) + p[3:6]


def to_image(camera_vertices: np.ndarray, image_height: int) -> np.ndarray:
    """Orthographic projection to image pixels: ``y_img = h - y - 1``; x and z unchanged."""
    out = np.array(camera_vertices, dtype=np.float64, copy=True)
    out[:, 1] = image_height - out[:, 1] - 1
    return out


def image_vertices(vertices: np.ndarray, pose_para: np.ndarray, image_height: int) -> np.ndarray:
    """(n, 3) image-space vertices of a fit: pose, orthographic projection, image y axis."""
    return to_image(transform_vertices(vertices, pose_para), image_height)


@dataclass(frozen=True)
class CropBox:
    """A square crop in original-image pixels: ``center`` (x, y), side ``size`` and the box's
    unjittered ``old_size`` (mean of the key points' box width and height)."""

    center: tuple[float, float]
    size: float
    old_size: float


def keypoint_box(keypoints_xy: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (2,) and ``old_size`` of the box of the key points (section 4).

    The key points are truncated to integers first, as PRNet's generator does.
    """
    kpt = np.asarray(keypoints_xy, dtype=np.float64)[:, :2].astype(np.int32)
    left, top = kpt.min(axis=0)
    right, bottom = kpt.max(axis=0)
    center = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
    old_size = ((right - left) + (bottom - top)) / 2
    return center, float(old_size)


def training_crop_box(
    keypoints_xy: np.ndarray, draws: tuple[float, float, float] = NO_JITTER
) -> CropBox:
    """The training crop: key-point box, ``size = int(1.5 * old_size)``, then the jitter.

    ``draws`` = (r1, r2, r3) in [0, 1): centre shift ``r*2m - m`` with ``m = 0.1 * old_size``
    and size factor ``0.9 + 0.2*r3``; (0.5, 0.5, 0.5) is no jitter.
    """
    center, old_size = keypoint_box(keypoints_xy)
    size = float(int(old_size * 1.5))
    marg = old_size * 0.1
    r1, r2, r3 = draws
    center = center + np.array([r1 * marg * 2 - marg, r2 * marg * 2 - marg])
    size = size * (r3 * 0.2 + 0.9)
    return CropBox((float(center[0]), float(center[1])), size, old_size)


def evaluation_crop_box(keypoints_xy: np.ndarray, factor: float = 1.6) -> CropBox:
    """PRNet's test crop (section 6): box of the ground-truth 68 points, ``int(1.6 * old_size)``.

    Uses the untruncated point coordinates, as PRNet's inference code does.
    """
    kpt = np.asarray(keypoints_xy, dtype=np.float64)[:, :2]
    left, top = kpt.min(axis=0)
    right, bottom = kpt.max(axis=0)
    center = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
    old_size = ((right - left) + (bottom - top)) / 2
    return CropBox(
        (float(center[0]), float(center[1])), float(int(old_size * factor)), float(old_size)
    )


def jitter_draws(seed: int, name: str) -> tuple[float, float, float]:
    """Three reproducible uniform draws in [0, 1) for a sample, from the seed and the sample
    name."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    r = rng.random(3)
    return float(r[0]), float(r[1]), float(r[2])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(3, 3) least-squares similarity (:func:`umeyama`) taking the (k, 2) points ``src`` to
    ``dst``, as a homogeneous matrix."""
    s, rot, t = umeyama(src, dst)
    out = np.eye(3)
    out[:2, :2] = s * rot
    out[:2, 2] = t
    return out


def crop_transform(box: CropBox, out_size: int = 256) -> np.ndarray:
    """(3, 3) similarity from original-image pixels to crop pixels for a square ``box``.

    Takes the box corners (left, top), (left, bottom), (right, top) to (0, 0), (0, out-1),
    (out-1, 0): the least-squares (Umeyama) similarity of those three point pairs, which for an
    axis-aligned square is exactly the scale ``k = (out-1) / size`` and the shift
    ``-k * (left, top)`` (written in closed form: :func:`similarity_transform` of the corners agrees
    to ~1e-13).
    Raises :class:`GeometryError` for a box that is not finite or has no positive size.
    """
    cx, cy = box.center
    size = float(box.size)
    if not (np.isfinite(cx) and np.isfinite(cy) and np.isfinite(size)) or size <= 0:
        raise GeometryError(
            "crop box",
            f"the crop box (centre ({cx:g}, {cy:g}), size {size:g} px) is empty or not finite",
        )
    k = (out_size - 1) / size
    half = size / 2
    return np.array([[k, 0.0, -k * (cx - half)], [0.0, k, -k * (cy - half)], [0.0, 0.0, 1.0]])


def vertices_in_crop(image_verts: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """(n, 3) crop-space positions: ``[x, y] = T @ [x, y, 1]``, ``z * T[0,0]``, then min z = 0.

    Works on a batch too: ``image_verts`` (..., n, 3) with ``transform`` (..., 3, 3).
    """
    v = np.asarray(image_verts, dtype=np.float64)
    t = np.asarray(transform, dtype=np.float64)
    xy = v[..., :2] @ np.swapaxes(t[..., :2, :2], -1, -2) + t[..., None, :2, 2]
    z = v[..., 2:3] * t[..., None, 0:1, 0]
    z = z - z.min(axis=-2, keepdims=True)
    return np.concatenate([xy, z], axis=-1)


def euler_degrees(pose_para: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees from a ``Pose_Para`` vector."""
    p = np.asarray(pose_para, dtype=np.float64).ravel()
    return tuple(float(a) for a in np.degrees(p[:3]))  # type: ignore[return-value]
