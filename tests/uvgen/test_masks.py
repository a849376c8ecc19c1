"""UV masks from the model vs PRNet's own files (real topology + PRNet's uv-data fixtures)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from uvgen import masks as M
from uvgen.formats.errors import DataError

CLASS_VALUES = {0.0, 3.0, 4.0, 16.0}


# ---------------------------------------------------------------------------------------------
# Real topology, rasterised once per module
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topology(bfm_topology_dir):
    from uvgen.formats.bfm import load_topology

    return load_topology(bfm_topology_dir)


@pytest.fixture(scope="module")
def raster(topology):
    return M.uv_rasterization(topology)


@pytest.fixture(scope="module")
def ours(topology, raster):
    return M.build_uv_masks(topology, raster=raster)


@pytest.fixture(scope="module")
def theirs(prnet_uv_dir):
    return M.build_uv_masks(source="prnet", prnet_dir=prnet_uv_dir)


@pytest.fixture(scope="module")
def agreement(ours, theirs):
    report = M.mask_agreement(ours, theirs)
    print("\nUV masks from the model vs PRNet's PNGs:\n" + M.format_agreement(report))
    return report


def test_keypoint_pixels_equal_prnet_file(topology, prnet_uv_dir):
    expected = M.load_prnet_kpt_uv(prnet_uv_dir / "uv_kpt_ind.txt")
    got = M.keypoint_uv_pixels(topology)
    assert got.shape == (2, 68) and got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(M.keypoint_uv_pixels(topology.uv, topology.kpt_ind), expected)


def test_face_ind_of_prnet_mask_equals_face_ind_file(theirs, prnet_uv_dir):
    expected = M.load_prnet_face_ind(prnet_uv_dir / "face_ind.txt")
    assert len(expected) == 43867
    np.testing.assert_array_equal(theirs.face_ind, expected)


def test_face_mask_agrees_with_prnet(ours, theirs, agreement):
    face = agreement["face"]
    # Measured: IoU 0.9800, precision 0.9899, recall 0.9899 (43,864 vs 43,867 pixels).
    assert face["iou"] >= 0.975
    assert face["precision"] >= 0.985 and face["recall"] >= 0.985
    assert abs(face["ours"] - face["theirs"]) < 0.01 * face["theirs"]
    # PRNet's 5-pixel border is outside, every key point inside.
    assert not ours.face[:5].any() and not ours.face[:, :5].any() and not ours.face[:, 251:].any()
    assert ours.face[ours.kpt_uv[1], ours.kpt_uv[0]].all()
    np.testing.assert_array_equal(ours.face_ind, np.flatnonzero(ours.face))


def test_weight_classes_agree_with_prnet(agreement):
    w = agreement["weights"]
    # Measured: 1.0 inside both face masks; 0.9865 over all pixels (the face edges differ).
    assert w["agreement_in_face"] >= 0.999
    assert w["agreement"] >= 0.98
    assert w["classes"]["eye_nose_mouth"]["iou"] >= 0.999
    assert w["classes"]["keypoint"]["iou"] == 1.0
    conf = w["confusion"]
    assert conf.sum() == 256 * 256
    assert (
        conf[2, :2].sum() == 0 and conf[:2, 2].sum() == 0
    )  # regions never confused with face/outside
    assert agreement["keypoints"]["equal"] == 68


def test_flat_mode_reproduces_prnet_png_bytes(topology, raster, theirs, prnet_uv_dir):
    png = np.asarray(Image.open(prnet_uv_dir / "uv_weight_mask.png"))
    flat = M.weight_mask(topology, face=theirs.face, mode="flat", raster=raster)
    encoded = M.weights_to_png(flat)
    # Every byte inside PRNet's face mask, blends included.
    np.testing.assert_array_equal(encoded[theirs.face], png[theirs.face])
    exact = M.load_prnet_weight_mask(prnet_uv_dir / "uv_weight_mask.png", mode="exact")
    np.testing.assert_allclose(exact, flat, atol=1e-6)


def test_model_weight_values(ours, topology):
    w = ours.weights
    assert w.shape == (256, 256) and w.dtype == np.float32
    assert set(np.unique(w).tolist()) == CLASS_VALUES
    kx, ky = ours.kpt_uv
    assert np.all(w[ky, kx] == 16.0) and int((w == 16.0).sum()) == 68
    assert np.all(w[~ours.face] == 0.0)
    assert np.all(w[ours.face] > 0.0)


def test_load_prnet_weight_mask_values(prnet_uv_dir, theirs):
    png = np.asarray(Image.open(prnet_uv_dir / "uv_weight_mask.png"))
    face = theirs.face
    w = M.load_prnet_weight_mask(prnet_uv_dir / "uv_weight_mask.png")
    assert w.dtype == np.float32 and set(np.unique(w).tolist()) == CLASS_VALUES
    assert np.all(w[png == 255] == 16.0)
    assert np.all(w[(png == 64) & face] == 4.0)
    assert np.all(w[(png == 48) & face] == 3.0)
    assert np.all(w[~face] == 0.0)
    kept = M.load_prnet_weight_mask(prnet_uv_dir / "uv_weight_mask.png", outside="keep")
    assert np.all(kept[(png == 48) & ~face] == 3.0)
    assert np.all(kept[0] == 0.0)  # PRNet's row 0 holds 0
    np.testing.assert_array_equal(kept[face], w[face])


# ---------------------------------------------------------------------------------------------
# Without fixtures
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [128, 512])
def test_masks_at_other_sizes_are_the_256_rules_at_that_size(topology, ours, size):
    """uvgen.uv_size: key points = the rounded UV pixels ``uv * (size - 1)`` of the key vertices,
    face_ind = the face mask's pixels, weights 16 at the key points; the face mask and the weight
    classes cover the same parts of the UV square as at 256 (nearest-pixel resampling)."""
    masks = M.build_uv_masks(topology, size=size)
    assert masks.size == size and masks.weights.shape == (size, size)
    px = M.uv_pixel_coords(topology.uv[topology.kpt_ind], size)
    np.testing.assert_array_equal(masks.kpt_uv, np.rint(px).T.astype(np.int64))
    np.testing.assert_array_equal(masks.face_ind, np.flatnonzero(masks.face))
    assert (masks.weights[masks.kpt_uv[1], masks.kpt_uv[0]] == 16.0).all()
    assert set(np.unique(masks.weights).tolist()) <= CLASS_VALUES
    # The same UV point in both maps: pixel centre k of 256 sits at (k / 255) * (size - 1).
    k = np.rint(np.arange(256) / 255 * (size - 1)).astype(np.int64)
    at_256 = np.ix_(k, k)
    face_iou = (masks.face[at_256] & ours.face).sum() / (masks.face[at_256] | ours.face).sum()
    same_class = (masks.weights[at_256] == ours.weights)[ours.face & masks.face[at_256]].mean()
    assert face_iou > 0.98 and same_class > 0.97, (face_iou, same_class)


def test_uv_pixel_coords_convention():
    uv = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.25]])
    np.testing.assert_allclose(M.uv_pixel_coords(uv), [[0, 255], [255, 0], [127.5, 191.25]])
    np.testing.assert_allclose(M.uv_pixel_coords(uv, size=5), [[0, 4], [4, 0], [2, 3]])


def _grid_model(k: int = 33):
    """A k x k vertex grid over the UV square; 68 key points on a face-like layout; a 'region'
    patch (segbin eyes) in the middle."""
    g = np.linspace(0.0, 1.0, k)
    uu, vv = np.meshgrid(g, g)
    uv = np.stack([uu.ravel(), vv.ravel()], axis=1)
    idx = np.arange(k * k).reshape(k, k)
    a, b, c, d = (
        idx[:-1, :-1].ravel(),
        idx[:-1, 1:].ravel(),
        idx[1:, :-1].ravel(),
        idx[1:, 1:].ravel(),
    )
    tri = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)]).astype(np.int32)
    # Jaw (0-16) along a U from (row 8, col 3) down to (row 2, col 16) and back up; rest inside.
    t = np.linspace(-1, 1, 17)
    jaw_cols = np.rint(16 + 13 * t).astype(int)
    jaw_rows = np.rint(24 - 20 * (1 - t**2)).astype(int)  # v index (v up): low = bottom of the map
    jaw = idx[jaw_rows, jaw_cols]
    inner = idx[14:22, 10:23].ravel()[: 68 - 17]
    kpt = np.concatenate([jaw, inner]).astype(np.int32)
    segbin = np.zeros((4, k * k), np.uint8)
    segbin[1, idx[16:22, 12:21].ravel()] = 1
    segbin[3] = 1 - segbin[:3].max(0)
    return SimpleNamespace(
        uv=uv, tri=tri, tri_mouth=np.zeros((0, 3), np.int32), kpt_ind=kpt, segbin=segbin
    )


def test_synthetic_model_masks():
    model = _grid_model()
    masks = M.build_uv_masks(model, size=64)
    assert masks.face.shape == (64, 64) and masks.face.dtype == bool
    assert masks.face[masks.kpt_uv[1], masks.kpt_uv[0]].all()
    assert not masks.face[0].any() and not masks.face[-1].any()  # border and below the jaw
    assert masks.face.sum() < 0.9 * 64 * 64
    w = masks.weights
    assert set(np.unique(w).tolist()) <= CLASS_VALUES
    assert np.all(w[masks.kpt_uv[1], masks.kpt_uv[0]] == 16.0)
    assert (w == 4.0).sum() > 0 and np.all(w[~masks.face] == 0.0)
    flat = M.weight_mask(model, size=64, mode="flat")
    assert np.all((flat >= 3.0) | (flat == 0.0)) and flat.max() == 16.0
    report = M.mask_agreement(masks, masks)
    assert report["face"]["iou"] == 1.0 and report["weights"]["agreement"] == 1.0
    assert report["keypoints"]["equal"] == 68


def test_prnet_png_decoding(tmp_path):
    bytes_ = np.array([0, 48, 53, 58, 64, 117, 122, 128, 255], np.uint8)
    img = np.full((256, 256), 48, np.uint8)
    img[0, : len(bytes_)] = bytes_
    Image.fromarray(img).save(tmp_path / "uv_weight_mask.png")
    face = np.ones((256, 256), bool)
    face[255] = False
    Image.fromarray(face.astype(np.uint8) * 255).save(tmp_path / "uv_face_mask.png")
    classes = M.load_prnet_weight_mask(tmp_path / "uv_weight_mask.png")
    np.testing.assert_array_equal(classes[0, : len(bytes_)], [0, 3, 3, 4, 4, 3, 4, 4, 16])
    assert np.all(classes[255] == 0.0) and np.all(classes[1:255] == 3.0)
    exact = M.load_prnet_weight_mask(tmp_path / "uv_weight_mask.png", face_mask=face, mode="exact")
    np.testing.assert_allclose(
        exact[0, : len(bytes_)], [0, 3, 10 / 3, 11 / 3, 4, 22 / 3, 23 / 3, 8, 16], rtol=1e-6
    )
    np.testing.assert_array_equal(M.weights_to_png(exact), np.where(face, img, 0))


def test_bad_files_raise_data_error(tmp_path):
    with pytest.raises(DataError):
        M.load_prnet_face_mask(tmp_path / "missing.png")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(DataError, match="256x256"):
        M.load_prnet_face_mask(tmp_path / "small.png")
    (tmp_path / "kpt.txt").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(DataError, match="shape"):
        M.load_prnet_kpt_uv(tmp_path / "kpt.txt")
    with pytest.raises(ValueError):
        M.build_uv_masks(source="prnet")
