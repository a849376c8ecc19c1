"""Preview drawing: the 68 landmarks on an image, joined along iBUG-68's contours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: iBUG-68 contours: (first, last, closed).
LANDMARK_CONTOURS = (
    (0, 16, False),
    (17, 21, False),
    (22, 26, False),
    (27, 30, False),
    (31, 35, False),
    (36, 41, True),
    (42, 47, True),
    (48, 59, True),
    (60, 67, True),
)


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    color: Sequence[int] = (0, 255, 0),
    radius: float | None = None,
    lines: bool = True,
) -> np.ndarray:
    """A uint8 copy of ``image`` (H, W, 3) with the (68, 2+) ``points`` (image pixels) drawn as
    dots, joined along the iBUG-68 contours when ``lines``. ``radius`` defaults to ~1/150 of the
    image size."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(img)
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    r = max(1.5, max(img.size) / 150.0) if radius is None else float(radius)
    col = tuple(int(c) for c in color)
    if lines and len(pts) == 68:
        for first, last, closed in LANDMARK_CONTOURS:
            seq = [tuple(p) for p in pts[first : last + 1]]
            if closed:
                seq.append(seq[0])
            draw.line(seq, fill=col, width=max(1, int(round(r / 2))))
    for x, y in pts:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=col)
    return np.asarray(img)
