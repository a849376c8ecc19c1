"""Tests for eval.paper_figures: the figures stage's choice of images and its gap filling (the
stage end to end: tests/pipeline/test_figures.py)."""

from __future__ import annotations

import numpy as np
import pytest

from eval.paper_figures import dense_filler, device_label, gap_filler, pick_sample, yaw_label
from tests.tiny_data import tiny_layout, tiny_maps
from uvgen.formats.errors import DataError


def test_pick_sample_and_yaw_label():
    names = ["a/image00001.jpg", "image00002.mat", "image00003"]
    assert pick_sample(names, np.array([5.0, -31.0, 60.0]), None, 25.0) == 1
    assert pick_sample(names, np.zeros(3), "image00003.jpg", 25.0) == 2
    with pytest.raises(DataError, match="uv_sample"):
        pick_sample(names, np.zeros(3), "image00009", 25.0)
    assert (
        yaw_label(-0.4) == "yaw 0°"
        and yaw_label(47.4) == "yaw +47°"
        and yaw_label(-12.6) == "yaw -13°"
    )


def test_device_label_says_what_is_known():
    assert device_label({"device": "cuda", "batch_size": "16"}) == "cuda, batch 16"
    assert device_label({}) == "?"


def test_without_a_model_the_fillers_are_the_identity(tmp_path):
    layout = tiny_layout()
    posmap = tiny_maps(1)[0]
    fill = gap_filler(None, layout)
    assert fill(posmap) is posmap
    assert gap_filler(tmp_path / "absent", layout)(posmap) is posmap
    dense = posmap.reshape(-1, 3)[layout.face_ind]
    np.testing.assert_array_equal(dense_filler(fill, layout)(dense), dense)
