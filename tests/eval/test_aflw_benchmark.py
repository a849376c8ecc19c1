"""The AFLW2000-3D benchmark (`prnet evaluate`): 3DDFA's own numbers on 3DDFA's arrays, every real
fixture counted (the 9 with wrapped angles too), re-annotated rows by name, dense ground truth from
the fits and its failures, head pose, and the method sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io as sio
import torch

from eval.aflw_benchmark import run_benchmark
from eval.aflw_truth import read_aflw_truth
from eval.evaluate import GroundTruth, evaluate
from eval.metrics import yaw_bin
from eval.pose import angle_errors, pose_from_landmarks, protocol_mask
from eval.predictions import Predictions
from eval.report import summary_table
from eval.sources import parse_method, read_predict_folder
from uvgen.formats.bfm import save_bfm

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "aflw_3ddfa_golden.json"
WRAPPED = {
    "image00032",
    "image00091",
    "image00150",
    "image00179",
    "image00339",
    "image00392",
    "image01530",
    "image03123",
    "image04157",
}


# ---------------------------------------------------------------------------------------------
# 3DDFA's benchmark, all 2,000 images


@pytest.mark.parametrize(
    "annotation, gt_file",
    [("original", "AFLW2000-3D.pts68.npy"), ("reannotated", "AFLW2000-3D-Reannotated.pts68.npy")],
)
def test_all_2000_images_equal_3ddfas_benchmark_code(aflw_3ddfa_dir, annotation, gt_file):
    """scripts/make_aflw_golden.py ran 3DDFA's calc_nme + ana on gt + N(0, 3 px); the same
    predictions through evaluate() and the report give the same bins, mean and std (1e-4 %)."""
    golden = json.loads(GOLDEN.read_text())[annotation]
    gt = np.load(aflw_3ddfa_dir / gt_file).astype(np.float64)  # (2000, D, 68)
    noise = np.random.default_rng(golden["seed"]).normal(0.0, golden["sigma_px"], gt.shape)
    pred = (gt + noise).transpose(0, 2, 1)
    yaw = np.load(aflw_3ddfa_dir / "AFLW2000-3D.pose.npy").astype(np.float64)
    names = [f"img{i:04d}" for i in range(len(gt))]
    pts = gt.transpose(0, 2, 1)
    landmarks = np.concatenate([pts[..., :2], np.zeros((len(gt), 68, 1))], axis=2)
    truth = GroundTruth(names, yaw, landmarks)
    pred_xyz = np.concatenate([pred[..., :2], np.full((len(gt), 68, 1), np.nan)], axis=2)
    (res,) = evaluate(truth, [Predictions("noisy", names, pred_xyz)])
    row = summary_table([res]).query("metric == 'nme_2d_68' and source == 'measured'").iloc[0]
    assert [int((yaw_bin(yaw) == b).sum()) for b in range(3)] == golden["bin_counts"]
    for ours, key in zip(("0-30", "30-60", "60-90"), ("0_30", "30_60", "60_90")):
        assert row[ours] == pytest.approx(golden["nme_pct"][key], abs=1e-4)
    assert row["mean"] == pytest.approx(golden["mean_pct"], abs=1e-4)
    assert row["std"] == pytest.approx(golden["std_pct"], abs=1e-4)
    assert row["all"] == pytest.approx(golden["all_images_mean_pct"], abs=1e-4)


# ---------------------------------------------------------------------------------------------
# The real fixtures through the .mat route


@pytest.fixture(scope="module")
def real_folder(aflw_fixture_dir, aflw_wrapped_fixture_dir, tmp_path_factory):
    """The 26 real fixtures linked into one AFLW2000-3D folder (never copied)."""
    root = tmp_path_factory.mktemp("aflw") / "AFLW2000"
    root.mkdir()
    for folder in (aflw_fixture_dir, aflw_wrapped_fixture_dir):
        for path in folder.iterdir():
            (root / path.name).symlink_to(path)
    return root


def _gt(folder: Path) -> tuple[list[str], np.ndarray]:
    paths = sorted(folder.glob("*.mat"))
    return [p.stem for p in paths], np.array([sio.loadmat(p)["pt3d_68"].T for p in paths])


def test_every_real_image_counts_wrapped_angles_in_the_yaw_bin_3ddfa_uses(real_folder, tmp_path):
    names, gt = _gt(real_folder)
    noisy = gt + np.random.default_rng(0).normal(0, 2.0, gt.shape)
    np.savez(tmp_path / "noisy.npz", landmarks=noisy, names=np.array(names))
    files = run_benchmark(
        real_folder, [("noisy", str(tmp_path / "noisy.npz"))], tmp_path / "out", figures=False
    )
    per_image = pd.read_csv(files.per_image_csv, dtype={"name": str})
    assert len(per_image) == 26 and set(per_image["name"]) >= WRAPPED
    assert np.isfinite(per_image["noisy/nme_2d_68"]).all()
    yaw = per_image.set_index("name")["yaw"]
    assert yaw["image03123"] == pytest.approx(-351.2, abs=0.1)  # as stored, not wrapped
    assert yaw_bin(yaw["image03123"]) == 2
    text = files.markdown.read_text()
    assert (
        "need a face3d-layout morphable model (--model-dir) or a test split" in text
    )  # dense tables left out, said so


def test_reannotated_rows_are_matched_by_name(real_folder, aflw_3ddfa_dir):
    truth = read_aflw_truth(
        real_folder, reannotated=aflw_3ddfa_dir / "AFLW2000-3D-Reannotated.pts68.npy"
    )
    order = (aflw_3ddfa_dir / "AFLW2000-3D_crop.list").read_text().split()
    re = np.load(aflw_3ddfa_dir / "AFLW2000-3D-Reannotated.pts68.npy")
    for i, name in enumerate(truth.names):
        np.testing.assert_array_equal(truth.landmarks_re[i], re[order.index(f"{name}.jpg")].T)


def test_head_pose_protocol_and_the_closer_euler_triple(real_folder, bfm_topology_dir):
    names, gt = _gt(real_folder)
    truth = read_aflw_truth(real_folder)
    keep = protocol_mask(truth.pose_deg)
    assert set(np.array(names)[~keep]) == WRAPPED  # all 9 have an angle beyond 99 degrees
    u = np.load(bfm_topology_dir / "u_shp.npy") + np.load(bfm_topology_dir / "u_exp.npy")
    info = sio.loadmat(bfm_topology_dir / "BFM_info.mat")["model_info"]
    kpt = np.asarray(info["kpt_ind"][0, 0]).ravel().astype(int) - 1
    pose = pose_from_landmarks(gt, u.reshape(-1, 3)[kpt])
    err = angle_errors(pose, truth.pose_deg)
    assert err[keep].mean() < 2.0 and err[keep].max() < 6.0  # mean shape vs the fits' shapes
    # the same rotation written as the other Euler triple scores the same
    p, y, r = pose[0]
    np.testing.assert_allclose(
        angle_errors(np.array([[p + 180, 180 - y, r + 180]]), truth.pose_deg[:1]),
        err[:1],
        atol=1e-9,
    )


def test_dense_ground_truth_from_fits_and_its_failures(
    real_folder, real_topology_model, tmp_path, aflw_fixture_dir
):
    """With a model, the dense tables appear; a fit that cannot give dense points is a failure
    named in the report, and the image stays in the 68-point table."""
    model_dir = tmp_path / "model"
    save_bfm(real_topology_model, model_dir)
    folder = tmp_path / "AFLW2000"
    folder.mkdir()
    for path in real_folder.iterdir():
        (folder / path.name).symlink_to(path.resolve())
    broken = sio.loadmat(aflw_fixture_dir / "image00050.mat")
    broken["Shape_Para"] = broken["Shape_Para"][:10]
    (folder / "image00050.mat").unlink()
    sio.savemat(folder / "image00050.mat", broken)
    truth = read_aflw_truth(folder, model_dir=model_dir)
    assert list(truth.dense_failures) == ["image00050"]
    dense = truth.dense_rows(slice(0, len(truth)))
    bad = np.array(truth.names) == "image00050"
    assert np.isnan(dense[bad]).all() and np.isfinite(dense[~bad]).all()
    # the dense points' 2D box holds the 68 ground-truth points (the face region around them)
    lo, hi = dense[~bad, :, :2].min(axis=1), dense[~bad, :, :2].max(axis=1)
    g = truth.landmarks[~bad, :, :2]
    assert (np.median(g, axis=1) > lo).all() and (np.median(g, axis=1) < hi).all()

    exact = Predictions("exact", truth.names, truth.landmarks, np.nan_to_num(dense))
    (res,) = evaluate(truth, [exact])
    per = res.per_image.set_index("name")
    assert np.isnan(per.loc["image00050", "nme_2d_dense"])  # a failure, not dropped
    assert per.loc["image00050", "nme_2d_68"] == 0.0
    assert np.nanmax(per["nme_3d_dense"]) < 1e-6  # float32 predictions


def test_predict_folder_source(tmp_path):
    face_ind = np.array([0, 5, 17])
    lm = np.arange(68 * 3, dtype=float).reshape(68, 3)
    for n in ("image00002", "image00004"):
        np.savetxt(tmp_path / f"{n}_kpt.txt", lm)
        np.save(
            tmp_path / f"{n}_posmap.npy", np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
        )
        (tmp_path / f"{n}_pose.json").write_text(
            json.dumps({"pitch_deg": 1.0, "yaw_deg": -20.0, "roll_deg": 3.0})
        )
    preds = read_predict_folder("PRN", tmp_path, face_ind)
    assert preds.names == ("image00002", "image00004")
    np.testing.assert_array_equal(preds.dense[0], [[0, 1, 2], [15, 16, 17], [51, 52, 53]])
    np.testing.assert_array_equal(preds.pose[1], [1.0, -20.0, 3.0])


def test_method_argument_is_name_equals_source():
    assert parse_method("2DASL=params=p.npy,basis=b.npz") == ("2DASL", "params=p.npy,basis=b.npz")
    with pytest.raises(ValueError, match="NAME=SOURCE"):
        parse_method("no-source")


def test_weights_source_runs_prn_with_the_protocol_crop(real_folder, embedded_model, tmp_path):
    from model.checkpoint import save_weights
    from model.prnet import PRNet

    save_bfm(embedded_model, tmp_path / "model")
    torch.manual_seed(0)
    save_weights(tmp_path / "w.pt", PRNet(width=2))
    folder = tmp_path / "two"
    folder.mkdir()
    for n in ("image00050", "image03123"):
        for suffix in (".jpg", ".mat"):
            (folder / f"{n}{suffix}").symlink_to((real_folder / f"{n}{suffix}").resolve())
    files = run_benchmark(
        folder,
        [("tiny", str(tmp_path / "w.pt"))],
        tmp_path / "out",
        model_dir=tmp_path / "model",
        device="cpu",
        figures=False,
    )
    metrics = json.loads(files.metrics_json.read_text())
    assert metrics["tiny/n_images"] == 2 and metrics["tiny/ms_per_image"] > 0
    assert metrics["tiny/nme_3d_dense/all"] is not None  # dense at the model's face pixels


def test_dense_ground_truth_is_the_same_through_the_test_split(
    real_folder, real_topology_model, tmp_path
):
    """The fits drawn through the model (.mat route) and the maps uvgen@test stored (test-split
    route) give the same dense points: (x, y) and z up to its arbitrary origin, within float16
    storage; the 9 wrapped images included. An image the split does not hold is a named dense
    failure and stays in the 68-point tables."""
    from eval.evaluate import GroundTruthFile
    from uvgen.h5codec import StorageOptions
    from uvgen.uvbuild import BuildSettings, build_split

    model_dir = tmp_path / "model"
    save_bfm(real_topology_model, model_dir)
    subset = tmp_path / "subset"  # the split is built without image00050
    subset.mkdir()
    for path in real_folder.iterdir():
        if path.stem != "image00050":
            (subset / path.name).symlink_to(path.resolve())
    out = tmp_path / "test.h5"
    settings = BuildSettings(
        split="test",
        model_dir=model_dir,
        source_root=subset,
        out_path=out,
        rejects_path=tmp_path / "rejects.csv",
        seed=0,
        jitter=False,
        task_size=50,
        storage=StorageOptions(),
        workers=0,
    )
    with pytest.warns(UserWarning):  # image01198's (2, 23) pt2d
        build_split(settings)
    fits = read_aflw_truth(real_folder, model_dir=model_dir)
    with GroundTruthFile(out) as split:
        stored = read_aflw_truth(real_folder, test_file=split)
        assert list(stored.dense_failures) == ["image00050"] and len(stored) == 26
        np.testing.assert_array_equal(stored.face_ind, fits.face_ind)
        a, b = fits.dense_rows(slice(0, 26)), stored.dense_rows(slice(0, 26))
    missing = np.array(stored.names) == "image00050"
    assert np.isnan(b[missing]).all() and np.isfinite(b[~missing]).all()
    a, b = a[~missing], b[~missing]
    np.testing.assert_allclose(a[..., :2], b[..., :2], atol=0.1)
    dz = (a[..., 2] - a[..., 2].min(axis=1, keepdims=True)) - (
        b[..., 2] - b[..., 2].min(axis=1, keepdims=True)
    )
    assert np.abs(dz).max() < 0.1


def test_weights_with_prnets_uv_data_score_68_points_and_pose(real_folder, prnet_uv_dir, tmp_path):
    """Weights in PRNet's own layout (its release, imported) run with --uv-data: landmarks from
    its key-point pixels and a pose from its canonical vertices, no BFM needed."""
    from model.checkpoint import save_weights
    from model.prnet import PRNet

    torch.manual_seed(0)
    save_weights(tmp_path / "w.pt", PRNet(width=2))
    folder = tmp_path / "one"
    folder.mkdir()
    for suffix in (".jpg", ".mat"):
        (folder / f"image00081{suffix}").symlink_to((real_folder / f"image00081{suffix}").resolve())
    files = run_benchmark(
        folder,
        [("tiny", str(tmp_path / "w.pt"))],
        tmp_path / "out",
        uv_data=prnet_uv_dir,
        device="cpu",
        figures=False,
    )
    metrics = json.loads(files.metrics_json.read_text())
    assert metrics["tiny/n_images"] == 1 and metrics["tiny/nme_3d_68/all"] is not None
    assert metrics["tiny/pose_mae/mean"] is not None and "tiny/nme_2d_dense/all" not in metrics


def test_an_unreadable_file_is_named_and_the_others_are_scored(real_folder, tmp_path):
    folder = tmp_path / "AFLW2000"
    folder.mkdir()
    for path in real_folder.iterdir():
        (folder / path.name).symlink_to(path.resolve())
    (folder / "image00050.mat").unlink()
    (folder / "image00050.mat").write_bytes(b"not a mat file")
    names, gt = _gt(real_folder)
    np.savez(tmp_path / "m.npz", landmarks=gt, names=np.array(names))
    files = run_benchmark(folder, [("m", str(tmp_path / "m.npz"))], tmp_path / "out", figures=False)
    per_image = pd.read_csv(files.per_image_csv, dtype={"name": str})
    assert len(per_image) == 25 and "image00050" not in set(per_image["name"])
    assert "`image00050`: not scored" in files.markdown.read_text()
    assert "image00050" in set(pd.read_csv(files.unmatched_csv)["name"])  # an extra prediction
