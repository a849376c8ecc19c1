"""Tests for eval.external: an external method as predictions (name matching, missing/extra
images, dense correspondence through the UV map), on hand-made and real data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io

from eval.evaluate import GroundTruth, evaluate
from eval.external import ExternalSpec, load_external, uv_correspondence
from tests.external_inputs import (
    K,
    assert_data_error,
    image_names,
    random_landmarks,
    write_basis,
    write_names,
)
from uvgen.formats.errors import DataError


def test_model_vertices_are_drawn_into_the_uv_map_like_the_ground_truth():
    # a square of 4 vertices covering the UV map; positions affine in (u, v) -> exact at every pixel
    uv = np.array([[0, 0], [1, 0], [0, 1], [1, 1.0]])
    tri = np.array([[0, 1, 2], [1, 3, 2]])
    face_ind = np.array([0, 255, 256 * 100 + 37, 65535])
    m = uv_correspondence(uv, tri, face_ind)
    verts = np.column_stack([10 + 100 * uv[:, 0], 20 + 50 * uv[:, 1], 3 * uv[:, 0] - uv[:, 1]])
    out = m @ verts
    col, row = face_ind % 256, face_ind // 256
    u, v = (
        col / 255,
        1 - row / 255,
    )  # docs/conventions.md section 5: u_px = u*(W-1), v_px = (H-1) - v*(H-1)
    assert np.allclose(out, np.column_stack([10 + 100 * u, 20 + 50 * v, 3 * u - v]), atol=1e-9)


def test_62_parameters_with_uv_give_dense_points(tmp_path):
    path, _ = write_basis(tmp_path, with_uv=True)
    params = np.random.default_rng(6).normal(0, 1, (2, 62))
    np.save(tmp_path / "p.npy", params)
    names = write_names(tmp_path / "n.txt", image_names(2))
    face_ind = np.arange(0, 65536, 4096)
    pred = load_external(
        ExternalSpec("ext", params=tmp_path / "p.npy", basis=path, names=names),
        face_count=len(face_ind),
        face_ind=face_ind,
    )
    assert pred.dense is not None and pred.dense.shape == (2, len(face_ind), 3)


def test_external_method_is_matched_by_name_and_unmatched_images_reported(tmp_path):
    lm = random_landmarks(4)
    gt = GroundTruth(
        tuple(image_names(4, ".mat")),
        np.zeros(4),
        lm.astype(np.float64),
        np.random.default_rng(0).uniform(0, 50, (4, K, 3)),
    )
    # predictions for images 2, 0, 3 (other order, .jpg names) and one not in the test set
    order = [2, 0, 3]
    names = [*(f"image{i:05d}.jpg" for i in order), "image99999.jpg"]
    np.savez(
        tmp_path / "lm.npz",
        landmarks=np.concatenate([lm[order], lm[:1]]) + np.float32([3, 4, 0]),
        names=np.array(names),
    )
    dense = np.concatenate([gt.dense[order], gt.dense[:1]]).astype(np.float32)
    np.savez(
        tmp_path / "dense.npz",
        dense=dense[[3, 1, 0, 2]].transpose(0, 2, 1),
        names=np.array(names)[[3, 1, 0, 2]],
    )
    pred = load_external(
        ExternalSpec(
            "ext", landmarks=tmp_path / "lm.npz", dense=tmp_path / "dense.npz", runtime_ms=12.0
        ),
        face_count=K,
    )
    with pytest.warns(UserWarning, match="ext"):
        (res,) = evaluate(gt, [pred])
    assert res.matching.missing == ("image00001",) and res.matching.extra == ("image99999",)
    norm = np.sqrt(np.ptp(lm[..., 0], axis=1) * np.ptp(lm[..., 1], axis=1))
    t = res.per_image
    assert math.isnan(t.loc[1, "nme_2d_68"]) and math.isnan(t.loc[1, "recon_3d_dense"])
    assert np.allclose(t.loc[[0, 2, 3], "nme_2d_68"], 5 / norm[[0, 2, 3]], rtol=1e-5)
    assert np.allclose(t.loc[[0, 2, 3], "recon_3d_dense"], 0, atol=1e-5)
    assert res.runtime_s == pytest.approx(0.012)


def test_sources_of_one_method_must_name_the_same_images(tmp_path):
    np.savez(tmp_path / "lm.npz", landmarks=random_landmarks(), names=np.array(image_names()))
    np.savez(tmp_path / "d.npz", dense=np.zeros((2, K, 3)), names=np.array(image_names(2)))
    with pytest.raises(DataError) as err:
        load_external(
            ExternalSpec("e", landmarks=tmp_path / "lm.npz", dense=tmp_path / "d.npz"), face_count=K
        )
    assert err.value.path == tmp_path / "d.npz" and err.value.field == "dense"


def test_dense_of_unknown_size_needs_a_topology(tmp_path):
    np.savez(tmp_path / "d.npz", dense=np.zeros((2, K + 5, 3)), names=np.array(image_names(2)))
    assert_data_error(
        lambda: load_external(ExternalSpec("e", dense=tmp_path / "d.npz"), face_count=K),
        tmp_path / "d.npz",
        "dense",
    )


def test_real_aflw_landmarks_as_text_files_score_zero(aflw_fixture_dir, tmp_path):
    mats = sorted(aflw_fixture_dir.glob("*.mat"))
    folder = tmp_path / "kpt"
    folder.mkdir()
    names, lms, yaws = [], [], []
    for p in mats:
        m = scipy.io.loadmat(p)
        pts = np.asarray(m["pt3d_68"], dtype=np.float64).T  # (68, 3) image pixels
        np.savetxt(folder / f"{p.stem}_kpt.txt", pts, fmt="%.6f")  # PRNet's demo naming
        names.append(p.name)
        lms.append(pts)
        yaws.append(np.degrees(float(m["Pose_Para"][0, 1])))
    gt = GroundTruth(tuple(names), np.array(yaws), np.array(lms))
    pred = load_external(ExternalSpec("AFLW-gt", landmarks=folder), face_count=1)
    (res,) = evaluate(gt, [pred])
    assert res.matching.n_matched == len(mats) == 17  # image01198 (pt2d (2, 23)) included
    assert np.all(res.per_image[["nme_2d_68", "nme_3d_68"]].to_numpy() < 1e-6)


def test_topology_correspondence_equals_the_ground_truth_map(embedded_model, tmp_path):
    from uvgen.formats.bfm import save_bfm
    from uvgen.groundtruth import build_uv_layout

    save_bfm(embedded_model, tmp_path / "model")
    rng = np.random.default_rng(7)
    verts = rng.uniform(0, 200, (2, embedded_model.n_vertices, 3)).astype(np.float32)
    face_ind = np.sort(rng.choice(256 * 256, 500, replace=False))
    np.savez(tmp_path / "d.npz", dense=verts, names=np.array(image_names(2)))
    pred = load_external(
        ExternalSpec("e", dense=tmp_path / "d.npz", topology=tmp_path / "model"),
        face_count=len(face_ind),
        face_ind=face_ind,
    )
    layout = build_uv_layout(embedded_model)
    for i in range(2):
        want = layout.position_map(verts[i].astype(np.float64)).reshape(-1, 3)[face_ind]
        assert np.allclose(pred.dense[i], want, atol=1e-3)
