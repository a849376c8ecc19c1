"""Tests for eval.metrics (NME, rigid alignment, yaw bins) on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io

from eval.metrics import (
    YAW_BIN_LABELS,
    bbox_size,
    nme_2d,
    nme_2d_batch,
    nme_3d,
    nme_3d_batch,
    reconstruction_error,
    rigid_align,
    rigid_transform,
    yaw_bin,
)
from uvgen.formats.errors import DataError


def _box_points(w: float = 40.0, h: float = 90.0, k: int = 68, seed: int = 0) -> np.ndarray:
    """k points (x, y, z) whose (x, y) box is exactly [10, 10+w] x [20, 20+h]."""
    rng = np.random.default_rng(seed)
    pts = np.column_stack(
        [rng.uniform(10, 10 + w, k), rng.uniform(20, 20 + h, k), rng.uniform(-50, 50, k)]
    )
    pts[0, :2] = (10, 20)
    pts[1, :2] = (10 + w, 20 + h)
    return pts


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


# --------------------------------------------------------------------------- NME
def test_bbox_size_is_sqrt_wh():
    gt = _box_points(40, 90)
    assert bbox_size(gt) == pytest.approx(60.0)  # sqrt(40*90)
    assert np.allclose(bbox_size(np.stack([gt, 2 * gt])), [60.0, 120.0])


def test_shift_3_4_gives_5_over_box():
    gt = _box_points(40, 90)
    pred = gt + np.array([3.0, 4.0, 0.0])
    assert nme_2d(pred, gt) == pytest.approx(5.0 / 60.0, rel=1e-12)
    # 2-column prediction against 3-column gt is fine for 2D.
    assert nme_2d(pred[:, :2], gt) == pytest.approx(5.0 / 60.0, rel=1e-12)
    # explicit normaliser overrides the box
    assert nme_2d(pred, gt, normaliser=10.0) == pytest.approx(0.5)


def test_2d_ignores_z_and_3d_includes_it():
    gt = _box_points(40, 90)
    gt[:, 2] = np.abs(gt[:, 2]) + 1.0
    gt[0, 2] = 0.0  # min z of gt is 0 at point 0
    pred = gt.copy()
    pred[:, 2] += 7.0 * (np.arange(68) % 2)  # odd points 7 px deeper; point 0 still the minimum
    assert nme_2d(pred, gt) == 0.0
    assert nme_3d(pred, gt) == pytest.approx(3.5 / 60.0, rel=1e-12)  # half the points off by 7


def test_nme_3d_is_invariant_to_z_shift_of_either_set():
    gt = _box_points(40, 90)
    rng = np.random.default_rng(1)
    pred = gt + rng.normal(0, 2.0, gt.shape)
    ref = nme_3d(pred, gt)
    assert ref > 0
    assert nme_3d(pred + [0, 0, 123.4], gt) == pytest.approx(ref, rel=1e-12)
    assert nme_3d(pred, gt - [0, 0, 55.0]) == pytest.approx(ref, rel=1e-12)
    # a pure z translation of the prediction is no error at all
    assert nme_3d(gt + [0, 0, 42.0], gt) == pytest.approx(0.0, abs=1e-12)
    # but an x shift still is: (3, 4, 0) -> 5 / 60
    assert nme_3d(gt + [3.0, 4.0, 17.0], gt) == pytest.approx(5.0 / 60.0, rel=1e-12)


def test_batched_matches_single():
    rng = np.random.default_rng(2)
    gt = np.stack([_box_points(40, 90, seed=s) * (1 + s) for s in range(4)])
    pred = gt + rng.normal(0, 1.5, gt.shape)
    b2, b3 = nme_2d_batch(pred, gt), nme_3d_batch(pred, gt)
    assert b2.shape == b3.shape == (4,)
    assert np.allclose(b2, [nme_2d(p, g) for p, g in zip(pred, gt)], rtol=1e-12)
    assert np.allclose(b3, [nme_3d(p, g) for p, g in zip(pred, gt)], rtol=1e-12)
    norm = np.array([1.0, 2.0, 3.0, 4.0])
    assert np.allclose(
        nme_2d_batch(pred, gt, norm), [nme_2d(p, g, n) for p, g, n in zip(pred, gt, norm)]
    )


def test_dense_points_and_explicit_68_normaliser():
    dense = _box_points(100, 100, k=5000, seed=3)
    gt68 = dense[:68].copy()
    gt68[0, :2] = (30, 40)  # a smaller 68-point box: 50 x 25
    gt68[1, :2] = (80, 65)
    gt68[2:, 0] = np.clip(gt68[2:, 0], 30, 80)
    gt68[2:, 1] = np.clip(gt68[2:, 1], 40, 65)
    pred = dense + [6.0, 8.0, 0.0]
    assert nme_2d(pred, dense) == pytest.approx(10.0 / 100.0)
    assert nme_2d(pred, dense, normaliser=bbox_size(gt68)) == pytest.approx(
        10.0 / math.sqrt(50 * 25)
    )


def test_bad_input_raises_data_error():
    gt = _box_points()
    with pytest.raises(DataError, match="gt"):
        nme_2d(gt, gt.T)  # (3, 68): points must be rows
    with pytest.raises(DataError, match="pred"):
        nme_2d(gt[:60], gt)
    with pytest.raises(DataError):
        nme_3d(gt[:, :2], gt)  # 3D needs z
    bad = gt.copy()
    bad[5, 1] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        nme_2d(bad, gt)
    flat = gt.copy()
    flat[:, 1] = 3.0  # zero-height box
    with pytest.raises(DataError, match="normaliser"):
        nme_2d(flat, flat)
    with pytest.raises(DataError, match="normaliser"):
        nme_2d_batch(np.stack([gt, gt]), np.stack([gt, gt]), normaliser=[1.0, 2.0, 3.0])


# --------------------------------------------------------------------------- rigid alignment
def test_rigid_align_recovers_rotation_and_translation():
    rng = np.random.default_rng(4)
    gt = rng.normal(0, 50, (500, 3))
    r = _rotation(np.array([0.3, -1.0, 0.5]), 0.9)
    t = np.array([12.0, -7.0, 30.0])
    pred = (gt - t) @ r  # gt = pred @ r.T + t
    s, r_est, t_est = rigid_transform(pred, gt)
    assert s == 1.0
    assert np.allclose(r_est, r, atol=1e-10) and np.allclose(t_est, t, atol=1e-8)
    assert np.allclose(rigid_align(pred, gt), gt, atol=1e-8)
    assert reconstruction_error(pred, gt, normaliser=100.0) == pytest.approx(0.0, abs=1e-12)


def test_rigid_align_with_scale_and_no_reflection():
    rng = np.random.default_rng(5)
    gt = rng.normal(0, 50, (300, 3))
    r = _rotation(np.array([1.0, 2.0, 3.0]), -2.0)
    pred = ((gt - 5.0) @ r) / 1.7
    assert np.allclose(rigid_align(pred, gt, scale=True), gt, atol=1e-8)
    s, _, _ = rigid_transform(pred, gt, scale=True)
    assert s == pytest.approx(1.7)
    # without scale the error stays, and is positive
    assert reconstruction_error(pred, gt) > 0.01
    # a mirrored prediction is not "aligned" by a reflection: result is a proper rotation
    mirrored = gt * [-1.0, 1.0, 1.0]
    _, r_m, _ = rigid_transform(mirrored, gt)
    assert np.linalg.det(r_m) == pytest.approx(1.0)
    assert reconstruction_error(mirrored, gt) > 0.01


def test_reconstruction_error_known_value():
    # centred square of half-side 10 in the xy plane; box 20 x 20 -> normaliser 20.
    gt = np.array([[10.0, 10, 0], [-10, 10, 0], [-10, -10, 0], [10, -10, 0]])
    assert reconstruction_error(gt + [5.0, -3.0, 8.0], gt) == pytest.approx(0.0, abs=1e-12)
    # a 1.5x scaled copy: best rigid fit is the identity, each point is off by 0.5 * 10*sqrt(2)
    assert reconstruction_error(1.5 * gt, gt) == pytest.approx(0.5 * 10 * math.sqrt(2) / 20)
    assert reconstruction_error(1.5 * gt, gt, scale=True) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- yaw bins
def test_yaw_bin_edges():
    yaws = np.array([0, 30, 30.0001, 60, 60.1, 95, -45, -30, -60, -61, 90])
    assert yaw_bin(yaws).tolist() == [0, 0, 1, 1, 2, 2, 1, 0, 1, 2, 2]
    assert yaw_bin(30.0) == 0 and isinstance(yaw_bin(30.0), int)
    assert yaw_bin(60.0) == 1 and yaw_bin(-95.0) == 2
    assert YAW_BIN_LABELS == ("0-30", "30-60", "60-90")
    with pytest.raises(DataError):
        yaw_bin([1.0, np.nan])


# --------------------------------------------------------------------------- real fixtures
def test_real_aflw_ground_truth_against_itself(aflw_fixture_dir):
    files = sorted(aflw_fixture_dir.glob("*.mat"))
    assert files
    pts = np.stack(
        [scipy.io.loadmat(f)["pt3d_68"].T.astype(np.float64) for f in files]
    )  # (B, 68, 3)
    assert pts.shape[1:] == (68, 3)
    for p in pts:
        assert nme_2d(p, p) == 0.0
        assert nme_3d(p, p) == 0.0
        assert reconstruction_error(p, p) == pytest.approx(0.0, abs=1e-9)
        assert 30.0 < bbox_size(p) < 450.0  # a face in a 450x450 image: tens to hundreds of px
    assert np.all(nme_2d_batch(pts, pts) == 0.0)
    # a one-pixel shift of every point gives 1 / face size, i.e. a small fraction
    shifted = nme_2d_batch(pts + [1.0, 0.0, 0.0], pts)
    assert np.allclose(shifted, 1.0 / np.asarray(bbox_size(pts)))
    assert np.all((shifted > 0.002) & (shifted < 0.03))
