"""Tests for eval.predictions: image names, method file names, validation (file round trips are
exercised by tests/eval/test_evaluate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from eval.evaluate import match_names
from eval.predictions import check_dense, check_landmarks, method_file_name, name_key
from uvgen.formats.errors import DataError


def test_name_keys_ignore_folders_and_extensions():
    assert (
        name_key("AFLW2000/image00002.jpg")
        == name_key("image00002.mat")
        == name_key("image00002")
        == "image00002"
    )
    assert name_key("a.b.c.png") == "a.b.c" and name_key("x.unknown") == "x.unknown"
    assert name_key("C:\\data\\image7.JPG") == "image7"
    m = match_names(
        ["image1.mat", "image2.mat", "image3.mat"], ["image3.jpg", "image1", "other.jpg"]
    )
    assert (
        m.index.tolist() == [1, -1, 0]
        and m.missing == ("image2",)  # every report spells names as name_key
        and m.extra == ("other",)
    )
    with pytest.raises(DataError, match="two predictions"):
        match_names(["a"], ["a.jpg", "a.png"], "preds.npy")


def test_method_file_name_accepts_labels_and_refuses_paths():
    assert (
        method_file_name("PRN") == "PRN.h5"
        and method_file_name("3DDFA-v2.1+x") == "3DDFA-v2.1+x.h5"
    )
    for bad in ("", "../PRN", "a/b", ".hidden", "a b"):
        with pytest.raises(ValueError):
            method_file_name(bad)


def test_landmark_and_dense_checks_name_the_field():
    lm = np.zeros((2, 68, 3), np.float32)
    assert check_landmarks(lm, 2, "f.h5").dtype == np.float32
    lm2d = lm.copy()
    lm2d[..., 2] = np.nan  # 2D-only: z NaN everywhere is allowed
    check_landmarks(lm2d, 2, "f.h5")
    lm2d[0, 0, 2] = 1.0  # ... but not a mix
    with pytest.raises(DataError, match="landmarks"):
        check_landmarks(lm2d, 2, "f.h5")
    with pytest.raises(DataError, match="expected shape"):
        check_landmarks(lm[:, :60], 2, "f.h5")
    dense = np.ones((3, 5, 3))
    dense[2, 1, 0] = np.inf
    with pytest.raises(DataError, match="image row 12"):
        check_dense(dense, 3, "f.h5", first_row=10)
