"""Tests for eval.external_params: the 3DDFA-style 62-parameter decoding and its basis file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.external import ExternalSpec, load_external
from eval.external_params import decode_params, load_basis, read_params
from tests.external_inputs import (
    K,
    N,
    assert_data_error,
    image_names,
    write_basis,
)


def test_62_parameter_decoding_round_trip(tmp_path):
    path, b = write_basis(tmp_path)
    basis = load_basis(path)
    rng = np.random.default_rng(5)
    raw = []
    for _ in range(N):  # camera s*R | t, 40 shape and 10 expression coefficients
        a = rng.uniform(-0.5, 0.5)
        r = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        cam = np.column_stack([1e-3 * r, rng.uniform(40, 80, 3)])
        raw.append(np.concatenate([cam.ravel(), rng.normal(0, 1, 40), rng.normal(0, 1, 10)]))
    raw = np.array(raw)
    params = (raw - b["param_mean"]) / b["param_std"]  # whitened, as the networks output them
    roi = np.array([[10.0, 20.0, 250.0, 260.0], [0, 0, 120, 120], [50, 40, 110, 100]])
    got = decode_params(params, basis, roi)
    for i in range(N):  # the expected image points, by hand
        v = (b["u"].ravel() + b["w_shp"] @ raw[i, 12:52] + b["w_exp"] @ raw[i, 52:]).reshape(-1, 3)
        cam = raw[i, :12].reshape(3, 4)
        x = v @ cam[:, :3].T + cam[:, 3]
        x[:, 1] = 120 + 1 - x[:, 1]
        sx, sy = (roi[i, 2] - roi[i, 0]) / 120, (roi[i, 3] - roi[i, 1]) / 120
        want = np.column_stack(
            [x[:, 0] * sx + roi[i, 0], x[:, 1] * sy + roi[i, 1], x[:, 2] * (sx + sy) / 2]
        )
        assert np.allclose(got[i], want, rtol=1e-10, atol=1e-9)
    assert np.allclose(decode_params(params, basis, roi, basis.kpt_ind), got[:, basis.kpt_ind])
    # through a params file: the landmarks are the key vertices; no dense without a correspondence
    np.savez(tmp_path / "p.npz", params=params, roi_boxes=roi, names=np.array(image_names()))
    pred = load_external(ExternalSpec("ext", params=tmp_path / "p.npz", basis=path), face_count=K)
    assert np.allclose(pred.landmarks, got[:, basis.kpt_ind], atol=1e-3) and pred.dense is None


def test_bad_basis_and_params_raise_data_errors(tmp_path):
    path, b = write_basis(tmp_path)
    broken = dict(b)
    del broken["w_exp"]
    np.savez(tmp_path / "b1.npz", **broken)
    assert_data_error(lambda: load_basis(tmp_path / "b1.npz"), tmp_path / "b1.npz", "w_exp")
    np.savez(tmp_path / "b2.npz", **{**b, "kpt_ind": np.full(68, 1000)})
    assert_data_error(lambda: load_basis(tmp_path / "b2.npz"), tmp_path / "b2.npz", "kpt_ind")
    np.savez(tmp_path / "p.npz", params=np.zeros((2, 60)), names=np.array(image_names(2)))
    assert_data_error(lambda: read_params(tmp_path / "p.npz"), tmp_path / "p.npz", "params")
    np.savez(
        tmp_path / "p2.npz",
        params=np.zeros((2, 62)),
        names=np.array(image_names(2)),
        roi_boxes=np.zeros((2, 3)),
    )
    assert_data_error(lambda: read_params(tmp_path / "p2.npz"), tmp_path / "p2.npz", "roi_boxes")
    with pytest.raises(ValueError, match="basis"):
        ExternalSpec("x", params=tmp_path / "p.npz")
    with pytest.raises(ValueError, match="unknown"):
        ExternalSpec.from_dict({"name": "x", "landmark": "a.npy"})
