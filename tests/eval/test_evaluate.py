"""Tests for eval.evaluate (and predictions files as it reads them), with hand-made cases whose
values are known exactly."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from eval.decode import decode_maps
from eval.evaluate import (
    GroundTruth,
    GroundTruthFile,
    combined_per_image,
    dense_errors,
    evaluate,
    image_metrics,
    rigid_align_batch,
)
from eval.metrics import bbox_size, nme_2d_batch, nme_3d_batch, reconstruction_error, rigid_align
from eval.predictions import (
    Predictions,
    PredictionsFile,
    PredictionsWriter,
    name_key,
    read_predictions,
    write_predictions,
)
from tests.tiny_data import write_uv_test_file
from uvgen.formats.errors import DataError


def _rot(axis, angle: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _gt(n: int = 6, k: int = 300, seed: int = 0) -> GroundTruth:
    """n images; 68 points whose (x, y) box is 40 x 90 (normaliser 60); dense points wider."""
    rng = np.random.default_rng(seed)
    lm = np.stack(
        [
            np.column_stack(
                [rng.uniform(10, 50, 68), rng.uniform(20, 110, 68), rng.uniform(0, 30, 68)]
            )
            for _ in range(n)
        ]
    )
    lm[:, 0, :2] = (10, 20)
    lm[:, 1, :2] = (50, 110)
    dense = np.stack(
        [
            np.column_stack([rng.uniform(0, 80, k), rng.uniform(0, 150, k), rng.uniform(0, 50, k)])
            for _ in range(n)
        ]
    )
    yaw = np.array([0, 30, 30.5, 60, 61, -95])[:n]
    return GroundTruth(tuple(f"image{i:05d}.mat" for i in range(n)), yaw, lm, dense)


def _preds(gt: GroundTruth, name: str = "m", d68=(0, 0, 0), ddense=(0, 0, 0), **kw) -> Predictions:
    return Predictions(
        name, gt.names, gt.landmarks + np.asarray(d68), gt.dense + np.asarray(ddense), **kw
    )


# ----------------------------------------------------------------------------------------------
# exact values


def test_ground_truth_against_itself_is_zero_everywhere():
    gt = _gt()
    (res,) = evaluate(gt, [_preds(gt)], chunk=4)
    vals = res.per_image[list(res.metrics)].to_numpy()
    assert res.metrics == (
        "nme_2d_68",
        "nme_3d_68",
        "nme_2d_dense",
        "nme_3d_dense",
        "recon_3d_dense",
    )
    assert np.all(np.abs(vals) < 1e-6)  # float32 storage of the prediction
    assert res.matching.missing == () and res.matching.extra == ()


def test_known_shift_gives_known_nme_normalised_by_the_68_box():
    gt = _gt()
    assert np.allclose(bbox_size(gt.landmarks), 60.0)  # sqrt(40 * 90)
    # 68 points moved by (3, 4) in x, y; dense by (3, 4) and 7 in z
    (res,) = evaluate(gt, [_preds(gt, d68=(3, 4, 0), ddense=(3, 4, 7))], chunk=5)
    t = res.per_image
    assert np.allclose(t["nme_2d_68"], 5 / 60, rtol=1e-6)
    assert np.allclose(t["nme_3d_68"], 5 / 60, rtol=1e-6)
    assert np.allclose(t["nme_2d_dense"], 5 / 60, rtol=1e-6)  # the 68 box, not the wider dense box
    assert np.allclose(t["nme_3d_dense"], 5 / 60, rtol=1e-6)  # a z offset is removed (min z = 0)
    assert np.allclose(t["recon_3d_dense"], 0, atol=1e-6)  # translation removed by the alignment


def test_rigid_motion_is_removed_by_the_reconstruction_error_only():
    gt = _gt(n=2)
    r = _rot([1, 2, 3], 0.3)
    dense = np.einsum("ij,nkj->nki", r, gt.dense) + np.array([5.0, -3.0, 2.0])
    pred = Predictions("rot", gt.names, gt.landmarks, dense)
    (res,) = evaluate(gt, [pred])
    assert np.allclose(res.per_image["recon_3d_dense"], 0, atol=1e-6)
    assert np.all(res.per_image["nme_3d_dense"] > 0.05)
    # a scaled prediction: error with a rigid alignment, none with a similarity one
    scaled = Predictions(
        "s",
        gt.names,
        gt.landmarks,
        1.2 * (gt.dense - gt.dense.mean(1, keepdims=True)) + gt.dense.mean(1, keepdims=True),
    )
    (rigid,) = evaluate(gt, [scaled])
    (sim,) = evaluate(gt, [scaled], recon_scale=True)
    assert np.all(rigid.per_image["recon_3d_dense"] > 0.01)
    assert np.allclose(sim.per_image["recon_3d_dense"], 0, atol=1e-6)


def test_dense_fast_path_equals_the_reference_metrics():
    rng = np.random.default_rng(3)
    g = rng.uniform(0, 300, (5, 400, 3))
    p = g + rng.normal(0, 4, g.shape)
    norm = rng.uniform(50, 150, 5)
    for scale in (False, True):
        out = dense_errors(p, g, norm, recon_scale=scale)
        assert np.allclose(out["nme_2d_dense"], nme_2d_batch(p, g, norm), rtol=1e-12, atol=0)
        assert np.allclose(out["nme_3d_dense"], nme_3d_batch(p, g, norm), rtol=1e-12, atol=0)
        ref = [reconstruction_error(p[i], g[i], norm[i], scale=scale) for i in range(5)]
        assert np.allclose(out["recon_3d_dense"], ref, rtol=1e-10, atol=0)
    # the inputs are not modified
    assert np.array_equal(p, p.copy()) and dense_errors(p, g, norm)["nme_2d_dense"].shape == (5,)


def test_rigid_align_batch_matches_single_and_never_reflects():
    rng = np.random.default_rng(4)
    g = rng.normal(0, 50, (3, 100, 3))
    p = g + rng.normal(0, 5, g.shape)
    p[2] = g[2] * np.array(
        [-1.0, 1.0, 1.0]
    )  # a mirror image: the best proper rotation, not a reflection
    for scale in (False, True):
        batch = rigid_align_batch(p, g, scale)
        for i in range(3):
            assert np.allclose(batch[i], rigid_align(p[i], g[i], scale=scale), atol=1e-9)


def test_two_dimensional_landmarks_have_no_3d_metric():
    gt = _gt(n=3)
    lm = gt.landmarks.copy()
    lm[..., 2] = np.nan
    (res,) = evaluate(gt, [Predictions("2d", gt.names, lm, None)])
    assert res.metrics == ("nme_2d_68",)
    assert np.allclose(res.per_image["nme_2d_68"], 0, atol=1e-6)
    assert res.per_image["nme_3d_68"].isna().all() and res.per_image["recon_3d_dense"].isna().all()
    out = image_metrics(gt.landmarks, lm)
    assert set(out) == {"nme_2d_68"}


# ----------------------------------------------------------------------------------------------
# names, missing and extra images


def test_missing_and_extra_images_are_reported_not_dropped():
    gt = _gt(n=4)
    names = (gt.names[0], gt.names[2], gt.names[3], "stranger.jpg")
    lm = np.concatenate([gt.landmarks[[0, 2, 3]], gt.landmarks[:1]])
    pred = Predictions("part", names, lm + np.array([3.0, 4.0, 0.0]), None, source="part.npy")
    with pytest.warns(UserWarning, match="1 test image.*without a prediction.*1 prediction"):
        (res,) = evaluate(gt, [pred])
    assert res.matching.missing == (name_key(gt.names[1]),) and res.matching.extra == ("stranger",)
    t = res.per_image
    assert len(t) == 4 and math.isnan(t.loc[1, "nme_2d_68"])  # row kept, NaN
    assert np.allclose(t.loc[[0, 2, 3], "nme_2d_68"], 5 / 60)
    with pytest.raises(DataError, match="part.npy") as err:
        evaluate(gt, [pred], on_unmatched="fail")
    assert err.value.field == "names"


def test_dense_count_mismatch_is_a_data_error_and_labels_unique():
    gt = _gt(n=2, k=50)
    bad = Predictions("bad", gt.names, gt.landmarks, np.zeros((2, 49, 3)), source="bad.h5")
    with pytest.raises(DataError, match="49 points"):
        evaluate(gt, [bad])
    with pytest.raises(ValueError, match="unique"):
        evaluate(gt, [_preds(gt), _preds(gt)])


def test_combined_per_image_has_method_metric_columns():
    gt = _gt(n=3)
    a, b = _preds(gt, "A"), Predictions("B", gt.names, gt.landmarks, None)
    wide = combined_per_image(evaluate(gt, [a, b]))
    assert list(wide.columns[:2]) == ["name", "yaw"]
    assert "A/recon_3d_dense" in wide.columns and "B/nme_2d_68" in wide.columns
    assert "B/nme_2d_dense" not in wide.columns


# ----------------------------------------------------------------------------------------------
# predictions files as the evaluation reads them


def test_predictions_file_round_trip_and_row_reads(tmp_path):
    gt = _gt(n=5, k=40)
    p = _preds(gt, "PRN", runtime=np.full(5, 0.02), meta={"device": "cpu"})
    path = write_predictions(tmp_path / "PRN.h5", p)
    back = read_predictions(path)
    assert back.method == "PRN" and back.names == p.names and back.meta["device"] == "cpu"
    assert np.array_equal(back.landmarks, p.landmarks) and np.array_equal(back.dense, p.dense)
    with PredictionsFile(path) as f:
        assert f.dense_count == 40 and np.allclose(f.runtime_s, 0.02)
        assert np.array_equal(f.dense_rows(np.array([3, 0, 3])), p.dense[[3, 0, 3]])
        assert np.array_equal(f.dense_rows(slice(1, 3)), p.dense[1:3])
        (res,) = evaluate(gt, [f])  # a file is evaluated like an in-memory set
    assert np.all(
        res.per_image[list(res.metrics)].to_numpy() < 1e-6
    ) and res.runtime_s == pytest.approx(0.02)


def test_writer_is_atomic_and_checks_rows(tmp_path):
    out = tmp_path / "m.h5"
    with (
        pytest.raises(DataError, match="never written"),
        PredictionsWriter(out, "m", ["a", "b"], dense_count=None) as w,
    ):
        w.write(0, np.zeros((1, 68, 3)))
    assert not out.exists() and not list(tmp_path.glob(".m.h5.*.tmp"))
    with (
        pytest.raises(DataError, match="non-finite"),
        PredictionsWriter(out, "m", ["a"], dense_count=4) as w,
    ):
        w.write(0, np.zeros((1, 68, 3)), np.full((1, 4, 3), np.nan))
    assert not out.exists()


def test_bad_predictions_files_raise_data_errors(tmp_path):
    gt = _gt(n=2, k=10)
    good = write_predictions(tmp_path / "g.h5", _preds(gt))
    cases = {
        "method": lambda f: f.attrs.__delitem__("method"),
        "landmarks": lambda f: (
            f.__delitem__("landmarks"),
            f.create_dataset("landmarks", data=np.zeros((2, 67, 3))),
        ),
        "runtime_s": lambda f: f.__delitem__("runtime_s"),
        "names": lambda f: (
            f.__delitem__("names"),
            f.create_dataset(
                "names", data=np.array(["a", "a.jpg"], dtype=object), dtype=h5py.string_dtype()
            ),
        ),
    }
    for field, damage in cases.items():
        bad = tmp_path / f"bad_{field}.h5"
        bad.write_bytes(good.read_bytes())
        with h5py.File(bad, "a") as f:
            damage(f)
        with pytest.raises(DataError) as err:
            PredictionsFile(bad)
        assert err.value.field == field and err.value.path == bad
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        PredictionsFile(tmp_path / "junk.h5")
    with pytest.raises(DataError, match="z must be finite"):
        lm = gt.landmarks.copy()
        lm[0, 0, 2] = np.nan
        Predictions("m", gt.names, lm, None)


# ----------------------------------------------------------------------------------------------
# the test file's ground truth and the map decoding


def test_test_file_ground_truth_and_map_decoding_agree(tmp_path):
    from model.inference import landmarks_from_map, map_to_image, vertices_from_map

    path, maps, transforms = write_uv_test_file(tmp_path)
    with GroundTruthFile(path) as gt:
        assert len(gt) == 4 and gt.dense_count == 200 and gt.yaw_deg.tolist() == [0, 20, 40, 60]
        lm, dense = decode_maps(maps, transforms, gt.kpt_uv, gt.face_ind)
        for i in range(4):  # the batched decoding equals model.inference's per-map functions
            ref = map_to_image(maps[i], transforms[i])
            assert np.allclose(lm[i], landmarks_from_map(ref, gt.kpt_uv), atol=1e-4)
            assert np.allclose(dense[i], vertices_from_map(ref, gt.face_ind), atol=1e-4)
        assert np.allclose(gt.dense_rows(slice(0, 4)), dense, atol=1e-4)
        assert np.allclose(gt.landmarks, lm, atol=1e-4)
        # the ground-truth maps as a method's predictions score 0 everywhere
        (res,) = evaluate(gt, [Predictions("gt", gt.names, lm, dense)], chunk=3)
    assert np.all(res.per_image[list(res.metrics)].to_numpy() < 1e-5)


def test_reports_spell_every_image_name_one_way():
    """Per-image rows, missing and extra images are all spelled ``image00002`` (name_key),
    whether the test file says ``image00002.mat`` or a method says ``image00002.jpg``."""
    names = ("image00002.mat", "image00004.mat", "image00006.mat")
    gt = GroundTruth(names, np.zeros(3), np.random.default_rng(0).uniform(0, 100, (3, 68, 3)))
    pred = Predictions(
        "m", ("image00002.jpg", "AFLW/image00004.png", "image09999.jpg"), gt.landmarks.copy()
    )
    with pytest.warns(UserWarning):
        (res,) = evaluate(gt, [pred])
    assert list(res.per_image["name"]) == ["image00002", "image00004", "image00006"]
    assert res.matching.missing == ("image00006",) and res.matching.extra == ("image09999",)
