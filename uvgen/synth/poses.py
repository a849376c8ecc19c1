"""Random 300W-LP-like poses for synthetic samples.

A pose is a ``Pose_Para`` vector [pitch, yaw, roll (radians), tx, ty, tz, s] in 300W-LP's convention
(docs/conventions.md section 4): ``V' = s * V @ R.T + t``, then ``y_img = h - y - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uvgen.geometry import transform_vertices


@dataclass(frozen=True)
class PoseRanges:
    """Pose spread, in degrees and pixels.

    yaw is uniform over ``±max_yaw``; pitch and roll are normal with the given standard deviations,
    clipped at ``±max_pitch`` / ``±max_roll``; the face's width in pixels (the model's x extent
    times ``s``) is uniform over ``face_width_px``; the face centre is shifted from the image centre
    by a normal offset of ``center_sigma_px`` and then kept inside the frame with ``margin_px``.
    """

    max_yaw: float = 90.0
    pitch_sigma: float = 10.0
    max_pitch: float = 30.0
    roll_sigma: float = 8.0
    max_roll: float = 30.0
    face_width_px: tuple[float, float] = (150.0, 260.0)
    center_sigma_px: float = 12.0
    margin_px: float = 4.0


def sample_pose(
    vertices: np.ndarray,
    image_size: int,
    rng: np.random.Generator,
    ranges: PoseRanges = PoseRanges(),
) -> np.ndarray:
    """(7,) float32 ``Pose_Para`` that puts the model-space ``vertices`` (n, 3) in a square image.

    The translation centres the posed face's box in the image (plus a random offset) and then
    shifts it so that the whole face stays ``margin_px`` inside the frame where it fits.
    """
    yaw = rng.uniform(-ranges.max_yaw, ranges.max_yaw)
    pitch = np.clip(rng.normal(0.0, ranges.pitch_sigma), -ranges.max_pitch, ranges.max_pitch)
    roll = np.clip(rng.normal(0.0, ranges.roll_sigma), -ranges.max_roll, ranges.max_roll)
    x_span = float(np.ptp(vertices[:, 0]))
    scale = rng.uniform(*ranges.face_width_px) / x_span
    angles = np.radians([pitch, yaw, roll])
    posed = transform_vertices(vertices, np.r_[angles, 0.0, 0.0, 0.0, scale])
    lo, hi = posed[:, :2].min(axis=0), posed[:, :2].max(axis=0)
    target = (image_size - 1) / 2 + rng.normal(0.0, ranges.center_sigma_px, size=2)
    shift = target - (lo + hi) / 2
    # Keep the face in frame (camera y points up, so the same bounds hold for y).
    low_bound = ranges.margin_px - lo
    high_bound = image_size - 1 - ranges.margin_px - hi
    shift = np.where(low_bound <= high_bound, np.clip(shift, low_bound, high_bound), shift)
    tz = rng.uniform(-120.0, -60.0)
    pose = np.r_[angles, shift[0], shift[1], tz, scale]
    return pose.astype(np.float32)
