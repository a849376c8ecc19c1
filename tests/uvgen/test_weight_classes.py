"""uvgen.weight_classes: the class codes a UV file stores, their paper weights, and the classes of
PRNet's own weight mask."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from uvgen import masks as M
from uvgen.weight_classes import (
    CLASS_NAMES,
    EYE_NOSE_MOUTH,
    FACE,
    KEYPOINT,
    OUTSIDE,
    PAPER_WEIGHTS,
    check_classes,
    class_weights,
    paper_weight_classes,
    weight_classes,
)


def test_codes_names_and_paper_weights() -> None:
    assert CLASS_NAMES == ("outside", "face", "eye_nose_mouth", "keypoint")
    assert (OUTSIDE, FACE, EYE_NOSE_MOUTH, KEYPOINT) == (0, 1, 2, 3)
    assert PAPER_WEIGHTS == (0.0, 3.0, 4.0, 16.0)


def test_paper_weights_and_classes_round_trip() -> None:
    classes = np.array([[0, 1], [2, 3]], np.uint8)
    weights = class_weights(classes)
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights, [[0, 3], [4, 16]])
    np.testing.assert_array_equal(paper_weight_classes(weights), classes)
    np.testing.assert_array_equal(class_weights(classes, (1, 2, 5, 7)), [[1, 2], [5, 7]])
    with pytest.raises(ValueError, match="expected 4 class weights"):
        class_weights(classes, (1, 2, 3))


def test_blends_snap_but_strict_reading_refuses_them() -> None:
    blends = np.array([10 / 3, 11 / 3, 22 / 3, 23 / 3, 8.0])
    np.testing.assert_array_equal(weight_classes(blends), [FACE, EYE_NOSE_MOUTH, *[2] * 3])
    assert weight_classes(blends).dtype == np.uint8
    with pytest.raises(ValueError, match=r"weight 3.66667 is none of the paper's weights 0/3/4/16"):
        paper_weight_classes(np.array([3.0, 11 / 3]))


def test_check_classes() -> None:
    assert check_classes(np.zeros((2, 2), np.uint8)) is None
    assert "integer" in check_classes(np.zeros((2, 2), np.float32))
    assert "0..3, got 0..4" in check_classes(np.array([0, 4]))


def test_prnet_weight_mask_maps_to_classes(prnet_uv_dir) -> None:
    """mask_source 'prnet': PRNet's uv_weight_mask.png grey levels -> classes (255 key points,
    64 eyes/nose/mouth, 48 face; blends by their vertices' majority; 0 outside its face mask)."""
    masks = M.build_uv_masks(source="prnet", prnet_dir=prnet_uv_dir)
    classes = masks.weight_class
    png = np.asarray(Image.open(prnet_uv_dir / "uv_weight_mask.png"))
    face = masks.face
    assert classes.dtype == np.uint8 and classes.shape == (256, 256)
    assert np.all(classes[~face] == OUTSIDE)
    for byte, code in ((255, KEYPOINT), (64, EYE_NOSE_MOUTH), (48, FACE)):
        assert np.all(classes[face & (png == byte)] == code), byte
    kx, ky = masks.kpt_uv
    assert np.all(classes[ky, kx] == KEYPOINT) and np.count_nonzero(classes == KEYPOINT) == 68
    assert set(np.unique(classes[face]).tolist()) == {FACE, EYE_NOSE_MOUTH, KEYPOINT}
    np.testing.assert_array_equal(class_weights(classes), masks.weights)  # class mode: exact
