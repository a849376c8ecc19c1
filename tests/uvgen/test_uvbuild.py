"""The UV ground-truth build end to end: reproducible, resumable, bad samples reported, test split,
dask path, and the real 300W-LP fixture through the real-topology test model."""

import csv
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import uvgen.uvbuild as uvbuild
import uvgen.uvtasks as uvtasks
from uvgen.formats.bfm import save_bfm
from uvgen.formats.errors import DataError
from uvgen.geometry import image_vertices
from uvgen.h5codec import StorageOptions
from uvgen.h5store import PositionMapFile
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


def record_tasks(monkeypatch, die_at=None, leave_partial=False):
    """Patch ``uvbuild.run_task`` to run each task in-process (workers 0) and record its
    ``shard_NNNNNN``, in order (the returned list); the task of shard ``die_at`` dies with
    KeyboardInterrupt instead (leaving a partial temporary file when ``leave_partial``)."""
    done = []

    def run(spec):
        if shard_index(spec.shard_path) == die_at:
            if leave_partial:  # a temporary file is all a task killed half-way leaves
                tmp = spec.shard_path.with_name(f".{spec.shard_path.name}.999.0.tmp")
                tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
        done.append(shard_index(spec.shard_path))
        return uvtasks.run_task(spec)

    monkeypatch.setattr(uvbuild, "run_task", run)
    return done


def contents(path):
    """Every dataset of an HDF5 file, as numpy arrays, plus the root attributes."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
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
    with (
        PositionMapFile(tmp_path / "nojit.h5") as f0,
        PositionMapFile(tmp_path / "seed1.h5") as f1,
        PositionMapFile(tmp_path / "seed0.h5") as f2,
    ):
        np.testing.assert_array_equal(f0.record(3).jitter, [0.5, 0.5, 0.5])
        assert not np.array_equal(f1.record(3).jitter, f2.record(3).jitter)
        assert not np.array_equal(f1.record(3).transform, f2.record(3).transform)


def test_killed_run_resumes_from_finished_shards(synth_data, tmp_path, monkeypatch):
    out = tmp_path / "train.h5"
    # the third task dies half-way
    calls = record_tasks(monkeypatch, die_at="shard_000002", leave_partial=True)
    with pytest.raises(KeyboardInterrupt):
        build_split(settings(synth_data, out))
    assert not out.exists()
    work = tmp_path / ".train.h5.work"
    assert (
        sorted(shard_index(p) for p in work.glob("shard_*.h5"))
        == calls
        == ["shard_000000", "shard_000001"]
    )

    resumed = record_tasks(monkeypatch)
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
    assert {os.path.basename(r["file"]) for r in rows} == {
        "HELEN_synth_000001_0.mat",
        "LFPW_synth_000003_0.jpg",
    }
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


def test_real_300wlp_sample_through_real_topology_model(
    real_topology_model, lp300w_fixture_dir, tmp_path
):
    from uvgen.formats.lp300w import read_300wlp_mat

    root = tmp_path / "300W_LP" / "IBUG"
    root.mkdir(parents=True)
    for suffix in (".jpg", ".mat"):  # linked, not copied: the fixtures stay in ../shared
        (root / f"IBUG_image_008_1_0{suffix}").symlink_to(
            lp300w_fixture_dir / f"IBUG_image_008_1_0{suffix}"
        )
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
        verts = image_vertices(
            real_topology_model.vertices(fit.shape_para, fit.exp_para), fit.pose_para, 450
        )
        kpt = (
            verts[real_topology_model.kpt_ind, :2] @ rec.transform[:2, :2].T + rec.transform[:2, 2]
        )
        assert kpt.min() > 0 and kpt.max() < 255


def test_real_aflw_test_split_keeps_every_image_wrapped_angles_and_negative_scale_too(
    real_topology_model, aflw_fixture_dir, aflw_wrapped_fixture_dir, tmp_path
):
    """All 26 real AFLW2000-3D fixtures are written: the 9 whose Euler angles lie far outside
    [-pi, pi] (one with s < 0) are valid rotations, used as stored, never rejected."""
    root = tmp_path / "AFLW2000"
    root.mkdir()
    for folder in (aflw_fixture_dir, aflw_wrapped_fixture_dir):  # linked, not copied
        for path in folder.iterdir():
            (root / path.name).symlink_to(path)
    save_bfm(real_topology_model, tmp_path / "model")
    s = settings(tmp_path, tmp_path / "test.h5", split="test", task_size=50)
    with pytest.warns(UserWarning):  # image01198's (2, 23) pt2d
        report = build_split(s)
    assert report.rejects == [] and report.written == 26
    with PositionMapFile(tmp_path / "test.h5") as f:
        recs = {Path(r.name).stem: r for r in f.records()}
    assert len(recs) == 26
    odd = recs["image03123"]
    assert odd.yaw_deg == pytest.approx(-351.2, abs=0.1)  # as stored, not wrapped
    assert odd.roll_deg == pytest.approx(-972.3, abs=0.1)
    assert recs["image04157"].pose_para[6] < 0


# ---------------------------------------------------------------------------------------------
# Builds that never go stale or corrupt: changed inputs, two builds at once, full disk, kill -9.

PROJECT = Path(__file__).resolve().parents[2]


def copy_sources(synth_data, root):
    """A private copy of the 300W-LP tree (the test edits it) beside a link to the model."""
    import shutil

    shutil.copytree(synth_data / "300W_LP", root / "300W_LP")
    (root / "model").symlink_to(synth_data / "model")
    return root


def test_resume_redoes_exactly_the_shards_whose_inputs_changed(synth_data, tmp_path, monkeypatch):
    from uvgen.formats.lp300w import read_300wlp_mat, write_300wlp_mat

    root = copy_sources(synth_data, tmp_path / "data")
    out = tmp_path / "train.h5"
    done = record_tasks(monkeypatch, die_at="shard_000002")
    with pytest.raises(KeyboardInterrupt):
        build_split(settings(root, out))
    assert done == ["shard_000000", "shard_000001"]

    # A fix to one fit of the first shard: same size, and its old mtime put back (only ctime tells).
    key = uvbuild.list_sample_keys("train", root / "300W_LP")[3]
    mat = root / "300W_LP" / key
    before = os.stat(mat)
    params = read_300wlp_mat(mat).params()
    params["pose_para"] = params["pose_para"].copy()
    params["pose_para"][3] += 7.0  # tx
    write_300wlp_mat(mat, **params)
    os.utime(mat, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(mat).st_size == before.st_size

    redone = record_tasks(monkeypatch)
    build_split(settings(root, out))
    assert redone == ["shard_000000", "shard_000002"]  # shard 1 (unchanged inputs) is reused
    with PositionMapFile(out) as f:
        rec = f.record(f.names.index(key))
    assert rec.pose_para[3] == pytest.approx(params["pose_para"][3])
    monkeypatch.setattr(uvbuild, "run_task", uvtasks.run_task)
    build_split(settings(root, tmp_path / "clean.h5"))
    assert_same_contents(out, tmp_path / "clean.h5")


def test_changed_code_starts_over(synth_data, tmp_path, monkeypatch):
    out = tmp_path / "train.h5"
    record_tasks(monkeypatch, die_at="shard_000001")
    with pytest.raises(KeyboardInterrupt):
        build_split(settings(synth_data, out))
    finished = sorted(p.name for p in (tmp_path / ".train.h5.work").glob("shard_*.h5"))
    assert [shard_index(n) for n in finished] == ["shard_000000"]
    monkeypatch.setattr(uvbuild, "code_digest", lambda: "edited code")
    redone = record_tasks(monkeypatch)
    build_split(settings(synth_data, out))
    assert redone == ["shard_000000", "shard_000001", "shard_000002"]


def stage_params(path, root, out, **uvgen):
    """A params.yaml for the uvgen stage: the project's, with the data in ``root`` and ``out``."""
    import yaml

    with open(PROJECT / "params.yaml") as fh:
        params = yaml.safe_load(fh)
    params["uvgen"].update(
        {
            "model_dir": str(root / "model"),
            "train_root": str(root / "300W_LP"),
            "train_out": str(out),
            "task_size": 10,
            "workers": 0,
            **uvgen,
        }
    )
    path.write_text(yaml.safe_dump(params))
    return path


def stage(*args, **kw):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "pipeline.make_uv", *map(str, args)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


GATED_BUILD = """
import sys, time
from pathlib import Path
import uvgen.uvbuild as ub
from pipeline.make_uv import main

gate, real = Path(sys.argv[1]), ub.run_task

def gated(spec):  # holds the build (and its lock) until the test opens the gate
    while not gate.exists():
        time.sleep(0.02)
    return real(spec)

ub.run_task = gated
main(["train", "--params", sys.argv[2]])
"""


def test_second_build_of_the_same_output_refuses(synth_data, tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "uv" / "train.h5"
    params = stage_params(tmp_path / "params.yaml", synth_data, out)
    gate = tmp_path / "gate"
    first = subprocess.Popen(
        [sys.executable, "-c", GATED_BUILD, str(gate), str(params)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = out.with_name(".train.h5.lock")
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline, (
                first.stderr and first.stderr.read()
            )
            time.sleep(0.05)
        second = stage("train", "--params", params)
        assert second.returncode != 0
        assert second.stderr.strip().splitlines() == [
            f"error: uvgen train: another build of {out} is running (pid {first.pid})"
        ]
    finally:
        gate.touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert not lock.exists()
    with PositionMapFile(out) as f:  # validated on opening; every stored chunk decodes
        assert len(f) == N_TRAIN and f.names == uvbuild.list_sample_keys(
            "train", synth_data / "300W_LP"
        )
        for i in range(N_TRAIN):
            assert f.image(i).any() and np.isfinite(f.posmap(i)).all() and f.posmap(i).any()


def test_full_disk_is_one_line_and_leaves_no_final_file(synth_data, tmp_path, monkeypatch):
    import errno

    from uvgen import diskspace, h5write

    out = tmp_path / "train.h5"
    # 1. the free-space check before a task: nothing written at all
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 3_000_000)
    with pytest.raises(uvbuild.DiskFullError) as err:
        build_split(settings(synth_data, out))
    assert str(err.value).startswith(
        f"No space left on device: {tmp_path / '.train.h5.work'} (needs about"
    )
    monkeypatch.undo()

    # 2. the disk fills up during the merge (after the check): h5py's OSError becomes the same error
    def full(*args):
        raise OSError(
            errno.ENOSPC,
            "Can't write data (file write failed: errno = 28, error message = "
            "'No space left on device')",
        )

    monkeypatch.setattr(h5write, "_copy_chunked", full)
    with pytest.raises(uvbuild.DiskFullError) as err:
        build_split(settings(synth_data, out))
    assert str(err.value) == f"No space left on device: {out}"
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".train.h5.work", "train_rejects.csv"]
    # 3. a task's HDF5 write fails on a full disk (h5py's RuntimeError carries only the errno text)
    monkeypatch.setattr(uvbuild, "code_digest", lambda: "other code: the shards are redone")

    def h5_full(*args, **kwargs):
        raise RuntimeError(
            "Can't write data (file write failed: errno = 28, error message = "
            "'No space left on device')"
        )

    monkeypatch.setattr(uvtasks, "write_encoded_shard", h5_full)
    with pytest.raises(uvbuild.DiskFullError) as err:
        build_split(settings(synth_data, out))
    assert str(err.value) == f"No space left on device: {tmp_path / '.train.h5.work'}"
    monkeypatch.undo()
    assert not out.exists()
    build_split(settings(synth_data, out))  # room again: resumes and completes
    with PositionMapFile(out) as f:
        assert len(f) == N_TRAIN


def test_stage_on_a_real_full_filesystem(synth_data, small_tmpfs, tmp_path):
    out = small_tmpfs / "uv" / "train.h5"  # 24 samples need ~10 MB; the file system holds 2 MB
    done = stage("train", "--params", stage_params(tmp_path / "params.yaml", synth_data, out))
    assert done.returncode == 1, done.stderr[-3000:]  # not 139 (segfault)
    lines = [ln for ln in done.stderr.splitlines() if ln.strip() and "sample/s" not in ln]
    assert len(lines) == 1 and lines[0].startswith(
        f"error: uvgen train: No space left on device: {small_tmpfs}"
    ), lines
    assert not out.exists() and not (small_tmpfs / "uv" / "train_rejects.csv").exists()
    assert not list(small_tmpfs.rglob("*.tmp")) and not list(small_tmpfs.rglob("*.h5"))


# Loaded by every Python process of the tree through PYTHONPATH: tasks that never finish, and a
# file per task started, so the test knows the dask workers are busy.
SLOW_TASKS_SITE = """
import os
if os.environ.get("UVBUILD_TEST_STARTED"):
    import pathlib, time
    import uvgen.uvbuild

    def never_ending(spec, _dir=pathlib.Path(os.environ["UVBUILD_TEST_STARTED"])):
        (_dir / str(os.getpid())).touch()
        time.sleep(300)

    uvgen.uvbuild.run_task = never_ending
"""

DRIVER = (  # stands in for dvc: runs the stage as its child
    "import subprocess, sys\n"
    "sys.exit(subprocess.call([sys.executable, '-m', 'pipeline.make_uv', *sys.argv[1:]]))"
)


def tagged_processes(tag):
    """Live (non-zombie) processes whose environment holds ``tag`` (this test's tree)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if tag.encode() not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_kill_9_of_the_parent_takes_stage_and_dask_workers_down(synth_data, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    import uuid

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_TASKS_SITE)
    started = tmp_path / "started"
    started.mkdir()
    tag = f"UVBUILD_TEST_TAG={uuid.uuid4().hex}"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(site), str(PROJECT)]),
        UVBUILD_TEST_STARTED=str(started),
        UVBUILD_TEST_TAG=tag.split("=", 1)[1],
    )
    out = tmp_path / "uv" / "train.h5"
    params = stage_params(tmp_path / "params.yaml", synth_data, out, workers=2)
    dvc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, "train", "--params", str(params)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(started.iterdir())) < 2:  # both workers are inside a task
            assert dvc.poll() is None, dvc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the dask workers never started a task"
            time.sleep(0.1)
        tree = tagged_processes(tag)
        workers = {int(p.name) for p in started.iterdir()}
        assert len(tree) >= 4 and workers <= set(
            tree
        )  # driver, stage (with the nannies), 2 workers
        dvc.kill()  # SIGKILL, like kill -9 of dvc
        dvc.wait()
        deadline = time.monotonic() + 10
        while tagged_processes(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tagged_processes(tag) == []
    finally:
        for pid in tagged_processes(tag):  # only this test's processes (its own tag)
            os.kill(pid, signal.SIGKILL)
        if dvc.poll() is None:
            dvc.kill()
            dvc.wait()
    rerun = stage("train", "--params", stage_params(tmp_path / "params0.yaml", synth_data, out))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    with PositionMapFile(out) as f:
        assert len(f) == N_TRAIN


def test_an_output_that_is_a_folder_fails_before_any_work(synth_data, tmp_path):
    """``uvgen.test_out`` naming a folder once ran the whole build, then named a temporary file
    that no longer existed and left the work folder and a rejects file beside it."""
    out = tmp_path / "test.h5"
    out.mkdir()
    with pytest.raises(DataError, match=r"test.h5: is a folder; an output file is expected here"):
        build_split(settings(synth_data, out, split="test"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.h5"] and not any(out.iterdir())
    beside_a_file = tmp_path / "file" / "test.h5"
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="file is a file, not a folder"):
        build_split(settings(synth_data, beside_a_file, split="test"))


def test_rejects_summary_names_the_list_and_the_most_common_reasons():
    from uvgen.formats.scan import Reject
    from uvgen.uvbuild import rejects_summary

    rejects = [
        Reject(Path(f"image{k:05d}.mat"), "Pose_Para", "non-finite values") for k in range(5)
    ]
    rejects += [Reject(Path("image00009.mat"), None, "missing file")] * 2
    rejects += [Reject(Path("image00011.mat"), "roi", "wrong shape")]
    assert rejects_summary([], Path("t_rejects.csv")) == "0 rejected"
    assert rejects_summary(rejects, Path("t_rejects.csv"), top=2) == (
        "8 rejected (list: t_rejects.csv; most common: Pose_Para: non-finite values x 5, "
        "missing file x 2)"
    )


def test_kill_during_work_folder_removal_never_loses_rejects(synth_data, tmp_path, monkeypatch):
    """Issue 23 item 3: a kill at any moment while the finished build removes its work folder (at
    its 1st, 2nd, ... file) leaves a folder from which a rerun reports every reject."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synth_data / "AFLW2000", root / "AFLW2000")
    (root / "model").symlink_to(synth_data / "model")
    (root / "AFLW2000" / "image00001.mat").write_bytes(b"not a mat file")
    out = tmp_path / "test.h5"
    real_unlink, real_merge = os.unlink, uvbuild.merge_shards
    for die_at in range(10):
        removed = []

        def merge(*a, _removed=removed, **kw):
            real_merge(*a, **kw)
            _removed.append("merged")

        def dying_unlink(path, *a, _die_at=die_at, _removed=removed, **kw):
            in_work = "dir_fd" in kw or ".test.h5.work" in str(path)  # rmtree: names in a dir fd
            if _removed and in_work:
                if len(_removed) > _die_at:
                    raise KeyboardInterrupt
                _removed.append(path)
            return real_unlink(path, *a, **kw)

        monkeypatch.setattr(uvbuild, "merge_shards", merge)
        monkeypatch.setattr(os, "unlink", dying_unlink)
        try:
            build_split(settings(root, out, split="test", task_size=2))
            killed = False
        except KeyboardInterrupt:
            killed = True
        monkeypatch.undo()
        report = build_split(settings(root, out, split="test", task_size=2))
        assert (report.written, len(report.rejects)) == (5, 1), die_at
        with open(tmp_path / "test_rejects.csv") as fh:
            assert [Path(r["file"]).name for r in csv.DictReader(fh)] == ["image00001.mat"]
        assert not (tmp_path / ".test.h5.work").exists()
        if not killed:
            break
    assert die_at >= 6  # every file of the folder (3 shards, their rejects, the manifest)


def test_shard_without_its_rejects_record_is_redone(synth_data, tmp_path, monkeypatch):
    out = tmp_path / "train.h5"
    record_tasks(monkeypatch, die_at="shard_000002")
    with pytest.raises(KeyboardInterrupt):
        build_split(settings(synth_data, out))
    work = tmp_path / ".train.h5.work"
    first = sorted(work.glob("shard_000000_*.h5"))[0]
    uvtasks.rejects_path_for(first).unlink()
    redone = record_tasks(monkeypatch)
    build_split(settings(synth_data, out))
    assert redone == ["shard_000000", "shard_000002"]


def test_data_warning_in_a_dask_worker_is_the_stage_line_after_the_bar(
    synth_data, tmp_path, monkeypatch, capfd
):
    """Issue 23 item 9: a DataWarning raised in a worker prints as the main process's one line,
    after the progress bar, never Python's format with an internal source line."""
    import shutil
    import warnings

    import scipy.io

    from pipeline import stage

    root = tmp_path / "data"
    shutil.copytree(synth_data / "AFLW2000", root / "AFLW2000")
    (root / "model").symlink_to(synth_data / "model")
    odd = root / "AFLW2000" / "image00002.mat"
    values = scipy.io.loadmat(odd)
    values["pt2d"] = np.zeros((2, 23))  # the real data's odd variant of an unused field
    scipy.io.savemat(odd, {k: v for k, v in values.items() if not k.startswith("__")})
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        monkeypatch.setattr(warnings, "showwarning", stage._format_warning)
        report = build_split(settings(root, tmp_path / "test.h5", split="test", workers=1))
    assert report.written == 6
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "warning" in line.lower()]
    assert lines == [
        f"warning: {odd}: pt2d: wrong shape (2, 23), expected (2, 21); kept as stored "
        "(the pipeline does not use this field)"
    ], err
    assert "out[spec.attr]" not in err and "DataWarning" not in err
    assert err.rindex("warning:") > err.rindex("uvgen test")  # after the bar


def test_odd_entries_are_rejects_not_left_out(synth_data, tmp_path):
    """Issue 23 item 5: a .mat that is a folder or a dangling link, and a test file not named
    imageNNNNN.mat, are reject rows with a reason, never silently absent."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synth_data / "AFLW2000", root / "AFLW2000")
    (root / "model").symlink_to(synth_data / "model")
    aflw = root / "AFLW2000"
    (aflw / "image00007.mat").mkdir()
    (aflw / "image00008.mat").symlink_to(aflw / "gone.mat")
    shutil.copy(aflw / "image00000.mat", aflw / "face.mat")
    shutil.copy(aflw / "image00000.jpg", aflw / "face.jpg")
    report = build_split(settings(root, tmp_path / "test.h5", split="test"))
    assert report.written == 6
    assert sorted((r.path.name, r.reason) for r in report.rejects) == [
        ("face.mat", "not named imageNNNNN.mat as AFLW2000-3D's files are"),
        ("image00007.mat", "is a folder, not a file"),
        ("image00008.mat", f"a symbolic link to a missing file ({aflw / 'gone.mat'})"),
    ]
