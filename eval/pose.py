"""Head-pose error on AFLW2000-3D (the common protocol of head-pose papers), pure numpy.

Angles are (pitch, yaw, roll) in degrees in 300W-LP's ``Pose_Para`` convention
(docs/conventions.md section 4: ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)``, transposed factors).

* Protocol images: those whose ground-truth angles ALL lie within +-:data:`PROTOCOL_MAX_DEG`
  degrees as stored (1,969 of the 2,000 real images); the MAE is over them only.
* A predicted pose comes from the method itself (a map's pose, a parameter vector's rotation) or,
  for a method that gives 3D landmarks only, from the similarity fit of the morphable model's mean
  68 key vertices onto them (:func:`pose_from_landmarks`).
* Every rotation has two Euler triples (``(p, y, r)`` and ``(p + 180, 180 - y, r + 180)``); the
  error of an image is that of the predicted triple closer to the ground truth, each angle's
  difference wrapped to [-180, 180) (:func:`angle_errors`), so that a |yaw| near 90 degrees is not
  scored as a 180-degree pitch error.
"""

from __future__ import annotations

import numpy as np

from uvgen.geometry import rotation_angles, similarity_fit

PROTOCOL_MAX_DEG = 99.0
POSE_METRICS: tuple[str, str, str] = ("pose_pitch", "pose_yaw", "pose_roll")
"""Per-image absolute angle errors in degrees (columns of the per-image table)."""


def protocol_mask(gt_deg: np.ndarray) -> np.ndarray:
    """(N,) bool: images whose stored (pitch, yaw, roll) (N, 3) degrees all lie within +-99."""
    g = np.asarray(gt_deg, dtype=np.float64)
    return np.isfinite(g).all(axis=1) & (np.abs(g) <= PROTOCOL_MAX_DEG).all(axis=1)


def _wrap(deg: np.ndarray) -> np.ndarray:
    return (deg + 180.0) % 360.0 - 180.0


def angle_errors(pred_deg: np.ndarray, gt_deg: np.ndarray) -> np.ndarray:
    """(N, 3) absolute errors in degrees of (pitch, yaw, roll) (N, 3) against the ground truth:
    the closer of the prediction's two equivalent Euler triples, differences wrapped."""
    p = np.asarray(pred_deg, dtype=np.float64)
    g = np.asarray(gt_deg, dtype=np.float64)
    alt = np.stack([p[:, 0] + 180.0, 180.0 - p[:, 1], p[:, 2] + 180.0], axis=1)
    e1 = np.abs(_wrap(p - g))
    e2 = np.abs(_wrap(alt - g))
    pick = e2.sum(axis=1) < e1.sum(axis=1)
    return np.where(pick[:, None], e2, e1)


def angles_of_rotations(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations (Pose_Para convention) -> (N, 3) (pitch, yaw, roll) degrees."""
    return np.degrees([rotation_angles(r) for r in np.asarray(rotations, dtype=np.float64)])


def pose_from_landmarks(landmarks: np.ndarray, canonical68: np.ndarray) -> np.ndarray:
    """(N, 68, 3) image-pixel landmarks (x right, y down, z towards the viewer) -> (N, 3) degrees:
    the rotation of the least-squares similarity taking ``canonical68`` (68, 3) model-space key
    vertices (the morphable model's mean) onto each image's points in the camera frame (y up).
    NaN rows where the landmarks are not finite."""
    pts = np.asarray(landmarks, dtype=np.float64)
    can = np.asarray(canonical68, dtype=np.float64)
    out = np.full((len(pts), 3), np.nan)
    for i, p in enumerate(pts):
        if not np.isfinite(p).all():
            continue
        cam = p * np.array([1.0, -1.0, 1.0])  # image y down -> camera y up (offset irrelevant)
        _, rot, _ = similarity_fit(can, cam)
        out[i] = np.degrees(rotation_angles(rot))
    return out


def pose_mae(errors: np.ndarray, gt_deg: np.ndarray) -> dict[str, float]:
    """MAE (degrees) over the protocol images of per-image errors (N, 3): ``pitch``, ``yaw``,
    ``roll``, their ``mean``, and ``n`` (protocol images with a prediction), ``n_protocol``."""
    e = np.asarray(errors, dtype=np.float64)
    keep = protocol_mask(gt_deg)
    ok = keep & np.isfinite(e).all(axis=1)
    m = e[ok].mean(axis=0) if ok.any() else np.full(3, np.nan)
    return {
        "pitch": float(m[0]),
        "yaw": float(m[1]),
        "roll": float(m[2]),
        "mean": float(m.mean()),
        "n": int(ok.sum()),
        "n_protocol": int(keep.sum()),
    }
