"""Weighted position-map loss: hand-made cases with known values."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from model.loss import LossWeights, weighted_map_loss
from model.prnet import MAP_SCALE
from uvgen.weight_classes import CLASS_NAMES, PAPER_WEIGHTS


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


def test_loss_weights_per_class_and_paper_defaults() -> None:
    paper = LossWeights.paper()
    assert paper == LossWeights(keypoint=16, eye_nose_mouth=4, face=3, outside=0)
    assert (
        paper.per_class() == PAPER_WEIGHTS
    )  # class-code order: outside, face, eye_nose_mouth, kpt
    assert [f.name for f in fields(LossWeights)] == [
        "keypoint",
        "eye_nose_mouth",
        "face",
        "outside",
    ]
    assert set(CLASS_NAMES) == {f.name for f in fields(LossWeights)}
    classes = np.array([[0, 1], [2, 3]], np.uint8)
    np.testing.assert_array_equal(paper.weight_map(classes), [[0, 3], [4, 16]])
    mine = LossWeights(keypoint=8, eye_nose_mouth=2.5, face=1, outside=0.5)
    np.testing.assert_array_equal(mine.weight_map(classes), [[0.5, 1], [2.5, 8]])
    assert mine.weight_map(classes).dtype == np.float32


def test_paper_weight_map_is_the_weight_mask_files_hold() -> None:
    """The weights training applies at the paper's defaults are the float32 values the UV files'
    ``uv/weight_mask`` held (and the old training read): the same bits."""
    classes = np.random.default_rng(0).integers(0, 4, (64, 64)).astype(np.uint8)
    old = np.asarray(np.array([0.0, 3.0, 4.0, 16.0])[classes], np.float32)
    new = LossWeights.paper().weight_map(classes)
    assert new.dtype == old.dtype and new.tobytes() == old.tobytes()


def test_loss_weights_checks() -> None:
    with pytest.raises(ValueError, match="face: must be >= 0, got -1"):
        LossWeights(keypoint=16, eye_nose_mouth=4, face=-1, outside=0)
    with pytest.raises(ValueError, match="every class's loss weight is 0"):
        LossWeights(keypoint=0, eye_nose_mouth=0, face=0, outside=0)
