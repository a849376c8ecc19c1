"""model.draw: the landmark preview."""

from __future__ import annotations

import numpy as np

from model import draw
from tests.model.face_maps import (
    draw_face,
)


def test_draw_landmarks(setup) -> None:
    model, layout, uv = setup
    s = draw_face(model, 3)
    out = draw.draw_landmarks(s.image, s.landmarks)
    assert out.shape == s.image.shape and out.dtype == np.uint8
    x, y = np.rint(s.landmarks[30, :2]).astype(int)
    assert tuple(out[y, x]) == (0, 255, 0)
