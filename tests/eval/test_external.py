"""Tests for eval.external: every accepted file format, name matching, missing/extra images,
bad files (DataError naming file and field) and the 3DDFA-style 62-parameter decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io

from eval.evaluate import GroundTruth, evaluate
from eval.external import ExternalSpec, load_external, uv_correspondence
from eval.external_params import decode_params, load_basis, read_params
from eval.external_readers import read_dense, read_landmarks
from uvgen.formats.errors import DataError

N, K = 3, 20


def _names(n: int = N, ext: str = ".jpg") -> list[str]:
    return [f"image{i:05d}{ext}" for i in range(n)]


def _lm(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 200, (n, 68, 3)).astype(np.float32)


def _write_names(path, names):
    path.write_text("\n".join(names) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# landmarks


def test_landmark_arrays_in_both_layouts(tmp_path):
    lm = _lm()
    names = _write_names(tmp_path / "names.txt", _names())
    np.save(tmp_path / "a.npy", lm)
    np.savez(tmp_path / "b.npz", landmarks=lm.transpose(0, 2, 1), names=np.array(_names()))
    for path, kw in ((tmp_path / "a.npy", {"names_path": names}), (tmp_path / "b.npz", {})):
        got_names, got = read_landmarks(path, **kw)
        assert got_names == _names() and np.array_equal(got, lm)


def test_two_column_landmarks_have_nan_depth(tmp_path):
    np.save(tmp_path / "xy.npy", _lm()[..., :2].transpose(0, 2, 1))  # (N, 2, 68)
    _, got = read_landmarks(tmp_path / "xy.npy", _write_names(tmp_path / "n.txt", _names()))
    assert np.array_equal(got[..., :2], _lm()[..., :2]) and np.isnan(got[..., 2]).all()


def test_per_image_text_files_including_prnet_kpt_names(tmp_path):
    lm = _lm(2)
    folder = tmp_path / "kpt"
    folder.mkdir()
    np.savetxt(folder / "image00000.txt", lm[0])
    np.savetxt(folder / "image00001_kpt.txt", lm[1].T)  # 3 x 68 is accepted too
    (folder / "readme.md").write_text("ignored")
    names, got = read_landmarks(folder)
    assert names == ["image00000", "image00001"] and np.allclose(got, lm, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# dense


def test_dense_arrays_and_mat_files(tmp_path):
    rng = np.random.default_rng(1)
    d = rng.uniform(0, 100, (N, K, 3)).astype(np.float32)
    np.save(tmp_path / "d.npy", d.transpose(0, 2, 1))  # (N, 3, n)
    names, got = read_dense(tmp_path / "d.npy", _write_names(tmp_path / "n.txt", _names()))
    assert np.array_equal(got, d)
    np.savez(tmp_path / "d.npz", dense=d, names=np.array(_names()))  # (N, n, 3)
    assert np.array_equal(read_dense(tmp_path / "d.npz")[1], d)
    folder = tmp_path / "mats"
    folder.mkdir()
    scipy.io.savemat(folder / "image00000.mat", {"vertex": d[0].T.astype(np.float64)})  # (3, n)
    scipy.io.savemat(folder / "image00001.mat", {"vertex": d[1]})  # (n, 3)
    names, got = read_dense(folder)
    assert names == ["image00000", "image00001"] and np.allclose(got, d[:2])


def test_model_vertices_are_drawn_into_the_uv_map_like_the_ground_truth():
    # a square of 4 vertices covering the UV map; positions affine in (u, v) -> exact at every pixel
    uv = np.array([[0, 0], [1, 0], [0, 1], [1, 1.0]])
    tri = np.array([[0, 1, 2], [1, 3, 2]])
    face_ind = np.array([0, 255, 256 * 100 + 37, 65535])
    m = uv_correspondence(uv, tri, face_ind)
    verts = np.column_stack([10 + 100 * uv[:, 0], 20 + 50 * uv[:, 1], 3 * uv[:, 0] - uv[:, 1]])
    out = m @ verts
    col, row = face_ind % 256, face_ind // 256
    u, v = col / 255, 1 - row / 255  # conventions 5: u_px = u*(W-1), v_px = (H-1) - v*(H-1)
    assert np.allclose(out, np.column_stack([10 + 100 * u, 20 + 50 * v, 3 * u - v]), atol=1e-9)


# ----------------------------------------------------------------------------------------------
# 3DDFA-style parameters


def _basis(tmp_path, n: int = 30, with_uv: bool = False, seed: int = 2):
    rng = np.random.default_rng(seed)
    arrays = dict(
        u=rng.normal(0, 1e4, (3 * n, 1)),
        w_shp=rng.normal(0, 1e3, (3 * n, 40)),
        w_exp=rng.normal(0, 1e3, (3 * n, 10)),
        param_mean=rng.normal(0, 1, 62),
        param_std=rng.uniform(0.5, 2, 62),
        kpt_ind=rng.choice(n, 68, replace=True).astype(np.int64),
    )
    if with_uv:
        arrays["uv"] = rng.uniform(0, 1, (n, 2))
        arrays["tri"] = np.array([[i, i + 1, i + 2] for i in range(n - 2)])
    np.savez(tmp_path / "basis.npz", **arrays)
    return tmp_path / "basis.npz", arrays


def test_62_parameter_decoding_round_trip(tmp_path):
    path, b = _basis(tmp_path)
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
    np.savez(tmp_path / "p.npz", params=params, roi_boxes=roi, names=np.array(_names()))
    pred = load_external(ExternalSpec("ext", params=tmp_path / "p.npz", basis=path), face_count=K)
    assert np.allclose(pred.landmarks, got[:, basis.kpt_ind], atol=1e-3) and pred.dense is None


def test_62_parameters_with_uv_give_dense_points(tmp_path):
    path, _ = _basis(tmp_path, with_uv=True)
    params = np.random.default_rng(6).normal(0, 1, (2, 62))
    np.save(tmp_path / "p.npy", params)
    names = _write_names(tmp_path / "n.txt", _names(2))
    face_ind = np.arange(0, 65536, 4096)
    pred = load_external(
        ExternalSpec("ext", params=tmp_path / "p.npy", basis=path, names=names),
        face_count=len(face_ind),
        face_ind=face_ind,
    )
    assert pred.dense is not None and pred.dense.shape == (2, len(face_ind), 3)


# ----------------------------------------------------------------------------------------------
# whole methods: name matching, missing and extra images


def test_external_method_is_matched_by_name_and_unmatched_images_reported(tmp_path):
    lm = _lm(4)
    gt = GroundTruth(
        tuple(_names(4, ".mat")),
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
    assert res.matching.missing == ("image00001.mat",) and res.matching.extra == ("image99999.jpg",)
    norm = np.sqrt(np.ptp(lm[..., 0], axis=1) * np.ptp(lm[..., 1], axis=1))
    t = res.per_image
    assert math.isnan(t.loc[1, "nme_2d_68"]) and math.isnan(t.loc[1, "recon_3d_dense"])
    assert np.allclose(t.loc[[0, 2, 3], "nme_2d_68"], 5 / norm[[0, 2, 3]], rtol=1e-5)
    assert np.allclose(t.loc[[0, 2, 3], "recon_3d_dense"], 0, atol=1e-5)
    assert res.runtime_s == pytest.approx(0.012)


def test_sources_of_one_method_must_name_the_same_images(tmp_path):
    np.savez(tmp_path / "lm.npz", landmarks=_lm(), names=np.array(_names()))
    np.savez(tmp_path / "d.npz", dense=np.zeros((2, K, 3)), names=np.array(_names(2)))
    with pytest.raises(DataError) as err:
        load_external(
            ExternalSpec("e", landmarks=tmp_path / "lm.npz", dense=tmp_path / "d.npz"), face_count=K
        )
    assert err.value.path == tmp_path / "d.npz" and err.value.field == "dense"


# ----------------------------------------------------------------------------------------------
# bad files


def _raises(fn, path, field):
    with pytest.raises(DataError) as err:
        fn()
    assert err.value.path == path, err.value
    assert err.value.field == field, err.value


def test_bad_files_raise_data_errors_naming_file_and_field(tmp_path):
    names = _write_names(tmp_path / "n.txt", _names())
    np.save(tmp_path / "short.npy", np.zeros((N, 67, 3)))
    _raises(
        lambda: read_landmarks(tmp_path / "short.npy", names), tmp_path / "short.npy", "landmarks"
    )
    np.save(tmp_path / "count.npy", np.zeros((N + 1, 68, 3)))
    _raises(
        lambda: read_landmarks(tmp_path / "count.npy", names), tmp_path / "count.npy", "landmarks"
    )
    np.save(tmp_path / "ok.npy", np.zeros((N, 68, 3)))
    _raises(lambda: read_landmarks(tmp_path / "ok.npy"), tmp_path / "ok.npy", "names")
    np.savez(tmp_path / "nonames.npz", landmarks=np.zeros((N, 68, 3)))
    _raises(lambda: read_landmarks(tmp_path / "nonames.npz"), tmp_path / "nonames.npz", "names")
    bad = np.zeros((N, 68, 3))
    bad[1, 5, 0] = np.nan
    np.savez(tmp_path / "nan.npz", landmarks=bad, names=np.array(_names()))
    with pytest.raises(DataError, match="row 1"):
        read_landmarks(tmp_path / "nan.npz")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    _raises(
        lambda: read_landmarks(tmp_path / "junk.npy", names), tmp_path / "junk.npy", "landmarks"
    )
    folder = tmp_path / "txt"
    folder.mkdir()
    np.savetxt(folder / "image00000.txt", np.zeros((60, 3)))
    _raises(lambda: read_landmarks(folder), folder / "image00000.txt", "landmarks")
    mats = tmp_path / "mats"
    mats.mkdir()
    scipy.io.savemat(mats / "image00000.mat", {"vertices": np.zeros((3, 5))})
    _raises(lambda: read_dense(mats), mats / "image00000.mat", "vertex")
    _raises(lambda: read_landmarks(tmp_path / "absent.npy", names), tmp_path / "absent.npy", None)


def test_bad_basis_and_params_raise_data_errors(tmp_path):
    path, b = _basis(tmp_path)
    broken = dict(b)
    del broken["w_exp"]
    np.savez(tmp_path / "b1.npz", **broken)
    _raises(lambda: load_basis(tmp_path / "b1.npz"), tmp_path / "b1.npz", "w_exp")
    np.savez(tmp_path / "b2.npz", **{**b, "kpt_ind": np.full(68, 1000)})
    _raises(lambda: load_basis(tmp_path / "b2.npz"), tmp_path / "b2.npz", "kpt_ind")
    np.savez(tmp_path / "p.npz", params=np.zeros((2, 60)), names=np.array(_names(2)))
    _raises(lambda: read_params(tmp_path / "p.npz"), tmp_path / "p.npz", "params")
    np.savez(
        tmp_path / "p2.npz",
        params=np.zeros((2, 62)),
        names=np.array(_names(2)),
        roi_boxes=np.zeros((2, 3)),
    )
    _raises(lambda: read_params(tmp_path / "p2.npz"), tmp_path / "p2.npz", "roi_boxes")
    with pytest.raises(ValueError, match="basis"):
        ExternalSpec("x", params=tmp_path / "p.npz")
    with pytest.raises(ValueError, match="unknown"):
        ExternalSpec.from_dict({"name": "x", "landmark": "a.npy"})


def test_dense_of_unknown_size_needs_a_topology(tmp_path):
    np.savez(tmp_path / "d.npz", dense=np.zeros((2, K + 5, 3)), names=np.array(_names(2)))
    _raises(
        lambda: load_external(ExternalSpec("e", dense=tmp_path / "d.npz"), face_count=K),
        tmp_path / "d.npz",
        "dense",
    )


# ----------------------------------------------------------------------------------------------
# real data


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
    assert res.matching.n_matched == len(mats) == 16
    assert np.all(res.per_image[["nme_2d_68", "nme_3d_68"]].to_numpy() < 1e-6)


def test_topology_correspondence_equals_the_ground_truth_map(embedded_model, tmp_path):
    from uvgen.formats.bfm import save_bfm
    from uvgen.groundtruth import build_uv_layout

    save_bfm(embedded_model, tmp_path / "model")
    rng = np.random.default_rng(7)
    verts = rng.uniform(0, 200, (2, embedded_model.n_vertices, 3)).astype(np.float32)
    face_ind = np.sort(rng.choice(256 * 256, 500, replace=False))
    np.savez(tmp_path / "d.npz", dense=verts, names=np.array(_names(2)))
    pred = load_external(
        ExternalSpec("e", dense=tmp_path / "d.npz", topology=tmp_path / "model"),
        face_count=len(face_ind),
        face_ind=face_ind,
    )
    layout = build_uv_layout(embedded_model)
    for i in range(2):
        want = layout.position_map(verts[i].astype(np.float64)).reshape(-1, 3)[face_ind]
        assert np.allclose(pred.dense[i], want, atol=1e-3)
