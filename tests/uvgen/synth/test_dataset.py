"""Synthetic data sets in the real layouts: fields at the real shapes and dtypes, fits that
reproduce the pixels, pose spread, determinism and resumption."""

import hashlib

import numpy as np
import pytest
import scipy.io as sio

import uvgen.synth.dataset as dataset
from uvgen.formats.aflw import list_aflw_samples, read_aflw_mat
from uvgen.formats.bfm import load_bfm, save_bfm
from uvgen.formats.lp300w import LP300W_FOLDERS, list_300wlp_samples, read_300wlp_mat
from uvgen.synth.dataset import draw_sample, sample_rng, write_synthetic_set
from uvgen.synth.facemodel import make_face_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    save_bfm(make_face_model(n_vertices=1500, seed=0), d)
    return d


def project_like_the_conventions(model, pose, h):
    """Key vertices of a fit in image pixels, written out from docs/conventions.md section 4."""
    pitch, yaw, roll, tx, ty, tz, s = (float(x) for x in pose)
    rx = np.array(
        [[1, 0, 0], [0, np.cos(pitch), np.sin(pitch)], [0, -np.sin(pitch), np.cos(pitch)]]
    )
    ry = np.array([[np.cos(yaw), 0, -np.sin(yaw)], [0, 1, 0], [np.sin(yaw), 0, np.cos(yaw)]])
    rz = np.array([[np.cos(roll), np.sin(roll), 0], [-np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    return lambda v: (lambda c: np.c_[c[:, 0], h - c[:, 1] - 1, c[:, 2]])(
        s * v @ (rx @ ry @ rz).T + [tx, ty, tz]
    )


def face_silhouette(model, index, seed, monkeypatch):
    """Pixels of sample ``index`` that belong to the face: identical over black and white
    backgrounds."""
    renders = []
    for value in (0.0, 1.0):
        monkeypatch.setattr(
            dataset,
            "cluttered_background",
            lambda h, w, rng, v=value: np.full((h, w, 3), v, np.float32),
        )
        renders.append(draw_sample(model, 450, sample_rng(seed, index)).image)
    return np.all(renders[0] == renders[1], axis=2)


def test_written_fields_have_the_real_shapes_and_dtypes(
    model_dir, tmp_path, lp300w_fixture_dir, aflw_fixture_dir
):
    write_synthetic_set("300wlp", model_dir, tmp_path / "lp", 8, 450, seed=1)
    write_synthetic_set("aflw2000", model_dir, tmp_path / "aflw", 2, 450, seed=2)
    assert sorted(p.name for p in (tmp_path / "lp").iterdir()) == sorted(LP300W_FOLDERS)
    for ours, real in [
        (list_300wlp_samples(tmp_path / "lp")[0], lp300w_fixture_dir / "IBUG_image_008_1_0.mat"),
        (list_aflw_samples(tmp_path / "aflw")[0], aflw_fixture_dir / "image00050.mat"),
    ]:
        a, b = sio.loadmat(ours), sio.loadmat(real)
        fields = sorted(k for k in b if not k.startswith("__"))
        assert sorted(k for k in a if not k.startswith("__")) == fields
        for k in fields:
            assert (a[k].shape, a[k].dtype) == (b[k].shape, b[k].dtype), k
        assert ours.with_suffix(".jpg").exists()


def test_key_vertices_from_the_mat_land_on_the_rendered_face(model_dir, tmp_path, monkeypatch):
    model = load_bfm(model_dir)
    for layout, seed, reader, lister in [
        ("300wlp", 3, read_300wlp_mat, list_300wlp_samples),
        ("aflw2000", 4, read_aflw_mat, list_aflw_samples),
    ]:
        write_synthetic_set(layout, model_dir, tmp_path / layout, 8, 450, seed=seed)
        paths = lister(tmp_path / layout)
        by_index = {
            int(p.stem.split("_")[-2] if layout == "300wlp" else p.stem[5:]): p for p in paths
        }
        for index in (0, 5):
            fit = reader(by_index[index])
            verts = model.vertices(fit.shape_para, fit.exp_para)
            kpt = project_like_the_conventions(model, fit.pose_para, 450)(verts[model.kpt_ind])
            face = face_silhouette(model, index, seed, monkeypatch)
            px = np.rint(kpt[:, :2]).astype(int)
            assert ((px >= 0) & (px < 450)).all()
            # Each key vertex lies on the mesh, so it projects onto the face (1 px tolerance).
            near = np.zeros_like(face)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    near |= np.roll(np.roll(face, dy, 0), dx, 1)
            assert near[px[:, 1], px[:, 0]].all(), (
                f"{layout} sample {index}: key vertices off the face"
            )
            if layout == "aflw2000":
                np.testing.assert_allclose(fit.pt3d_68.T, kpt, atol=1e-3)
            else:
                # pt2d come from the build's float32 vertices (fit_vertices: ~0.2 BFM units,
                # < 1e-3 px).
                np.testing.assert_allclose(fit.pt2d.T, kpt[:, :2], atol=1e-3)


def test_pose_spread_is_300wlp_like_and_faces_stay_in_frame(model_dir):
    model = load_bfm(model_dir)
    yaws, pitches = [], []
    for i in range(40):
        s = draw_sample(model, 450, sample_rng(9, i))
        yaws.append(np.degrees(s.pose_para[1]))
        pitches.append(np.degrees(s.pose_para[0]))
        assert s.landmarks[:, :2].min() >= 0 and s.landmarks[:, :2].max() <= 449
    assert max(np.abs(yaws)) <= 90 and min(yaws) < -45 and max(yaws) > 45
    assert max(np.abs(pitches)) <= 30


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_files_and_interrupted_run_resumes(model_dir, tmp_path, monkeypatch):
    write_synthetic_set("300wlp", model_dir, tmp_path / "a", 10, 450, seed=5)
    write_synthetic_set("300wlp", model_dir, tmp_path / "b", 10, 450, seed=5, workers=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")

    # Interrupted: two samples never finished (one left only its .jpg).
    victims = list_300wlp_samples(tmp_path / "b")[3:5]
    victims[0].unlink()
    victims[1].unlink()
    victims[1].with_suffix(".jpg").unlink()
    drawn = []
    real_draw = dataset.draw_sample
    monkeypatch.setattr(
        dataset, "draw_sample", lambda *a, **k: drawn.append(1) or real_draw(*a, **k)
    )
    write_synthetic_set("300wlp", model_dir, tmp_path / "b", 10, 450, seed=5)
    assert len(drawn) == 2
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
