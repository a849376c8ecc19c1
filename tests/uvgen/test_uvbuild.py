"""The UV ground-truth build end to end: reproducible, resumable, bad samples reported, test split,
dask path, and the real 300W-LP fixture through the real-topology test model."""
import csv
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import uvgen.uvbuild as uvbuild
from uvgen.formats.bfm import save_bfm
from uvgen.geometry import image_vertices
from uvgen.h5store import PositionMapFile, StorageOptions
from uvgen.synth.dataset import write_synthetic_set
from uvgen.synth.facemodel import make_face_model
from uvgen.uvbuild import BadSamplesError, BuildSettings, build_split

N_TRAIN = 24


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    save_bfm(make_face_model(n_vertices=1500, seed=0), root / "model")
    write_synthetic_set("300wlp", root / "model", root / "300W_LP", N_TRAIN, 450, seed=1)
    write_synthetic_set("aflw2000", root / "model", root / "AFLW2000", 6, 450, seed=2)
    return root


def settings(root, out, split="train", **kw):
    base = dict(
        split=split,
        model_dir=root / "model",
        source_root=root / ("300W_LP" if split == "train" else "AFLW2000"),
        out_path=out,
        rejects_path=out.with_name(out.stem + "_rejects.csv"),
        seed=0,
        jitter=True,
        task_size=10,
        storage=StorageOptions(),
        workers=0,
    )
    base.update(kw)
    return BuildSettings(**base)


def shard_index(path):
    """``shard_NNNNNN`` of a shard file name (the rest is the digest of its inputs)."""
    return Path(path).name[: len("shard_000000")]


def contents(path):
    """Every dataset of an HDF5 file, as numpy arrays, plus the root attributes."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        out["attrs"] = {k: f.attrs[k] for k in f.attrs}
    return out


def assert_same_contents(a, b, ignore_attrs=()):
    ca, cb = contents(a), contents(b)
    assert ca.keys() == cb.keys()
    for key in ca:
        if key == "attrs":
            def kept(attrs):
                return {k: str(v) for k, v in attrs.items() if k not in ignore_attrs}

            assert kept(ca[key]) == kept(cb[key])
        else:
            np.testing.assert_array_equal(ca[key], cb[key], err_msg=key)


def test_same_parameters_give_identical_files(synth_data, tmp_path):
    r1 = build_split(settings(synth_data, tmp_path / "a.h5"))
    r2 = build_split(settings(synth_data, tmp_path / "b.h5", task_size=7))
    assert r1.written == r2.written == N_TRAIN and r1.rejects == []
    # Shard boundaries differ; the data do not (the recorded parameters name the task size).
    assert_same_contents(tmp_path / "a.h5", tmp_path / "b.h5", ignore_attrs=("params",))
    with PositionMapFile(tmp_path / "a.h5") as f:
        assert len(f) == N_TRAIN
        assert f.names[0] == "AFW/AFW_synth_000000_0.mat"
        rec = f.record(0)
        assert rec.jitter.shape == (3,) and rec.transform.shape == (3, 3)
        assert f.image(0).dtype == np.uint8 and f.posmap(0).shape == (256, 256, 3)
        assert set(np.unique(f.uv.weight_mask)) <= {0.0, 3.0, 4.0, 16.0}
    # A work directory is left only while the build is unfinished.
    assert not (tmp_path / ".a.h5.work").exists()


def test_jitter_switch_and_seed_change_the_crops(synth_data, tmp_path):
    build_split(settings(synth_data, tmp_path / "nojit.h5", jitter=False))
    build_split(settings(synth_data, tmp_path / "seed1.h5", seed=1))
    build_split(settings(synth_data, tmp_path / "seed0.h5"))
    with PositionMapFile(tmp_path / "nojit.h5") as f0, PositionMapFile(tmp_path / "seed1.h5") as f1, \
            PositionMapFile(tmp_path / "seed0.h5") as f2:
        np.testing.assert_array_equal(f0.record(3).jitter, [0.5, 0.5, 0.5])
        assert not np.array_equal(f1.record(3).jitter, f2.record(3).jitter)
        assert not np.array_equal(f1.record(3).transform, f2.record(3).transform)


def test_killed_run_resumes_from_finished_shards(synth_data, tmp_path, monkeypatch):
    out = tmp_path / "train.h5"
    real_run = uvbuild.run_task  # run in-process (workers 0), so the patch applies
    calls = []

    def dying_run(spec):
        if len(calls) == 2:  # the third task dies half-way: a temporary file is all it leaves
            spec.shard_path.with_name(f".{spec.shard_path.name}.999.0.tmp").write_bytes(b"partial")
            raise KeyboardInterrupt
        calls.append(shard_index(spec.shard_path))
        return real_run(spec)

    monkeypatch.setattr(uvbuild, "run_task", dying_run)
    with pytest.raises(KeyboardInterrupt):
        build_split(settings(synth_data, out))
    assert not out.exists()
    work = tmp_path / ".train.h5.work"
    assert sorted(shard_index(p) for p in work.glob("shard_*.h5")) == calls == ["shard_000000", "shard_000001"]

    resumed = []
    monkeypatch.setattr(uvbuild, "run_task", lambda spec: resumed.append(shard_index(spec.shard_path)) or real_run(spec))
    build_split(settings(synth_data, out))
    assert resumed == ["shard_000002"]  # finished shards are not redone
    build_split(settings(synth_data, tmp_path / "clean.h5"))
    assert_same_contents(out, tmp_path / "clean.h5")


def test_changed_settings_discard_stale_shards(synth_data, tmp_path, monkeypatch):
    out = tmp_path / "train.h5"
    work = tmp_path / ".train.h5.work"
    uvbuild.prepare_resumable_dir(work, {"something": "else"})
    (work / "shard_000000.h5").write_bytes(b"stale shard from other settings")
    build_split(settings(synth_data, out))
    with PositionMapFile(out) as f:
        assert len(f) == N_TRAIN


def test_bad_samples_are_reported_and_can_fail_the_stage(synth_data, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synth_data / "300W_LP", root / "300W_LP")
    (root / "model").symlink_to(synth_data / "model")
    bad_mat = root / "300W_LP" / "HELEN" / "HELEN_synth_000001_0.mat"
    bad_mat.write_bytes(b"not a mat file")
    (root / "300W_LP" / "LFPW" / "LFPW_synth_000003_0.jpg").unlink()
    report = build_split(settings(root, tmp_path / "train.h5"))
    assert report.written == N_TRAIN - 2 and len(report.rejects) == 2
    with open(tmp_path / "train_rejects.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {os.path.basename(r["file"]) for r in rows} == {"HELEN_synth_000001_0.mat", "LFPW_synth_000003_0.jpg"}
    assert all(r["reason"] for r in rows)
    with PositionMapFile(tmp_path / "train.h5") as f:
        assert "HELEN/HELEN_synth_000001_0.mat" not in f.names

    with pytest.raises(BadSamplesError, match="2 bad sample"):
        build_split(settings(root, tmp_path / "strict.h5", on_bad_sample="fail"))
    assert not (tmp_path / "strict.h5").exists()
    assert (tmp_path / "strict_rejects.csv").exists()


def test_test_split_uses_ground_truth_box_and_keeps_landmarks(synth_data, tmp_path):
    from uvgen.formats.aflw import read_aflw_mat

    out = tmp_path / "test.h5"
    build_split(settings(synth_data, out, split="test", jitter=True))
    with PositionMapFile(out) as f:
        assert len(f) == 6
        rec = f.record(2)
        np.testing.assert_array_equal(rec.jitter, [0.5, 0.5, 0.5])  # never jittered
        sample = read_aflw_mat(synth_data / "AFLW2000" / rec.name)
        gt = rec.extras["landmarks_gt"]
        np.testing.assert_allclose(gt, sample.pt3d_68.T, atol=1e-4)
        # Box of the ground-truth points, size int(1.6 * old_size): the points' box sits centred.
        crop_pts = gt[:, :2] @ rec.transform[:2, :2].T + rec.transform[:2, 2]
        lo, hi = crop_pts.min(axis=0), crop_pts.max(axis=0)
        np.testing.assert_allclose((lo + hi) / 2, [127.5, 127.5], atol=1.0)
        assert 255 / 1.6 - 2 < np.mean(hi - lo) < 255 / 1.6 + 2
        # Landmarks decoded from the dense map, mapped back to the image, land on the ground truth.
        kpt = f.uv.kpt_uv
        decoded = f.posmap(2)[kpt[1], kpt[0], :2]
        back = (decoded - rec.transform[:2, 2]) @ np.linalg.inv(rec.transform[:2, :2]).T
        assert np.median(np.linalg.norm(back - gt[:, :2], axis=1)) < 2.5


def test_dask_workers_give_the_same_file(synth_data, tmp_path):
    build_split(settings(synth_data, tmp_path / "serial.h5"))
    build_split(settings(synth_data, tmp_path / "dask.h5", workers=2))
    assert_same_contents(tmp_path / "serial.h5", tmp_path / "dask.h5")


def test_dask_workers_run_without_malloc_trim_threshold():
    from uvgen.cluster import dask_client

    with dask_client(1) as client:
        env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert list(env.values()) == [None]


def test_real_300wlp_sample_through_real_topology_model(real_topology_model, lp300w_fixture_dir, tmp_path):
    from uvgen.formats.lp300w import read_300wlp_mat

    root = tmp_path / "300W_LP" / "IBUG"
    root.mkdir(parents=True)
    for suffix in (".jpg", ".mat"):  # linked, not copied: the fixtures stay in ../shared
        (root / f"IBUG_image_008_1_0{suffix}").symlink_to(lp300w_fixture_dir / f"IBUG_image_008_1_0{suffix}")
    save_bfm(real_topology_model, tmp_path / "model")
    s = settings(tmp_path, tmp_path / "real.h5", task_size=50)
    report = build_split(s)
    assert report.written == 1 and report.rejects == []
    fit = read_300wlp_mat(root / "IBUG_image_008_1_0.mat")
    with PositionMapFile(tmp_path / "real.h5") as f:
        rec = f.record(0)
        assert rec.name == "IBUG/IBUG_image_008_1_0.mat"
        np.testing.assert_array_equal(rec.shape_para, fit.shape_para)
        assert rec.yaw_deg == pytest.approx(np.degrees(-0.76809585), abs=1e-4)
        pm = f.posmap(0)
        assert np.isfinite(pm).all() and pm[..., 2].min() >= -1 / 16
        # The crop frames the fit's key vertices: their box lies well inside the crop.
        verts = image_vertices(real_topology_model.vertices(fit.shape_para, fit.exp_para), fit.pose_para, 450)
        kpt = verts[real_topology_model.kpt_ind, :2] @ rec.transform[:2, :2].T + rec.transform[:2, 2]
        assert kpt.min() > 0 and kpt.max() < 255
