"""Tests for eval.decode: UV position maps -> landmarks and dense vertices in image pixels."""

from __future__ import annotations

import numpy as np
import pytest

from eval.decode import decode_maps, to_image_batch


def test_decode_maps_samples_key_points_and_face_pixels_then_maps_to_the_image():
    s = 8
    maps = np.arange(2 * s * s * 3, dtype=np.float32).reshape(2, s, s, 3)
    t = np.stack([np.array([[2.0, 0, 4], [0, 2.0, 6], [0, 0, 1]]), np.eye(3)])
    kpt_uv = np.tile(np.array([[3], [5]]), (1, 68))  # every key point at column 3, row 5
    face_ind = np.array([0, 9, 63])
    lm, dense = decode_maps(maps, t, kpt_uv, face_ind)
    assert lm.shape == (2, 68, 3) and dense.shape == (2, 3, 3)
    crop = maps[0, 5, 3]
    np.testing.assert_allclose(lm[0, 0], [(crop[0] - 4) / 2, (crop[1] - 6) / 2, crop[2] / 2])
    np.testing.assert_allclose(dense[1], maps[1].reshape(-1, 3)[face_ind])
    np.testing.assert_allclose(
        to_image_batch(maps[:1, 5, 3][:, None], t[:1])[0, 0], lm[0, 0], rtol=1e-6
    )
    with pytest.raises(ValueError):
        decode_maps(maps[:, :4], t, kpt_uv, face_ind)
