"""Weighted position-map loss: hand-made cases with known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model.loss import weighted_map_loss, weights_from_prnet_mask
from model.prnet import MAP_SCALE


def test_zero_when_prediction_equals_scaled_target() -> None:
    target = torch.rand(2, 3, 4, 4) * 250.0
    loss = weighted_map_loss(target / MAP_SCALE, target, torch.full((4, 4), 16.0))
    assert float(loss) == pytest.approx(0.0, abs=1e-12)


def test_known_value_per_pixel_euclidean_times_weight_mean() -> None:
    pred = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    target = torch.zeros_like(pred)
    # sample 0, pixel (0,0): error (0.1, 0.2, 0.2) on the [0,1] scale -> squared norm 0.09
    target[0, :, 0, 0] = torch.tensor([0.1, 0.2, 0.2], dtype=torch.float64) * MAP_SCALE
    # sample 1, pixel (1,1): error (0.5, 0, 0) -> 0.25 ; pixel (0,1): error 0.3 but weight 0
    target[1, 0, 1, 1] = 0.5 * MAP_SCALE
    target[1, 2, 0, 1] = 0.3 * MAP_SCALE
    weight = torch.tensor([[16.0, 0.0], [4.0, 3.0]], dtype=torch.float64)
    loss = weighted_map_loss(pred, target, weight)
    expected = (16 * 0.09 + 3 * 0.25) / (2 * 2 * 2)  # mean over batch and all pixels
    assert float(loss) == pytest.approx(expected, rel=1e-12)


def test_per_sample_weights_and_gradient() -> None:
    pred = torch.full((2, 3, 1, 1), 0.5, requires_grad=True)
    target = torch.zeros(2, 3, 1, 1)
    weight = torch.tensor([[[1.0]], [[0.0]]])
    loss = weighted_map_loss(pred, target, weight)
    assert float(loss.detach()) == pytest.approx(3 * 0.25 / 2)
    loss.backward()
    torch.testing.assert_close(pred.grad[0, :, 0, 0], torch.full((3,), 0.5))  # 2 * 0.5 * 1 / 2
    assert torch.all(pred.grad[1] == 0)


def test_shape_checks() -> None:
    with pytest.raises(ValueError):
        weighted_map_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5), torch.ones(4, 4))
    with pytest.raises(ValueError):
        weighted_map_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.ones(4, 5))


def test_weights_from_synthetic_mask() -> None:
    mask = np.array([[255, 64], [48, 48]], dtype=np.uint8)
    face = np.array([[255, 255], [255, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(weights_from_prnet_mask(mask), [[16, 4], [3, 3]])
    np.testing.assert_array_equal(weights_from_prnet_mask(mask, face), [[16, 4], [3, 0]])


def test_weights_from_real_prnet_mask(prnet_uv_dir) -> None:
    mask = np.asarray(Image.open(prnet_uv_dir / "uv_weight_mask.png"))
    face = np.asarray(Image.open(prnet_uv_dir / "uv_face_mask.png"))
    w = weights_from_prnet_mask(mask, face)
    assert w.shape == (256, 256) and w.dtype == np.float32
    assert np.all(w[face == 0] == 0)
    assert np.count_nonzero(w == 16) == 68  # one pixel per key point
    ku, kv = np.loadtxt(prnet_uv_dir / "uv_kpt_ind.txt").astype(int)  # row 0 = column, row 1 = row
    assert np.all(w[kv, ku] == 16)
    inside = w[face > 0]
    assert set(np.unique(inside[(inside == 4) | (inside == 3)]).tolist()) == {3.0, 4.0}
    assert inside.max() == 16 and inside.min() >= 0
