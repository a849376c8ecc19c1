"""The ``prnet predict`` command line, end to end on synthetic images with a tiny random network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.api import load_layout
from model.checkpoint import save_weights
from model.prnet import PRNet
from pipeline import cli
from uvgen.formats.aflw import write_aflw_sample
from uvgen.formats.bfm import save_bfm
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import atomic_save_jpeg, atomic_savemat
from uvgen.synth.dataset import aflw21_points, draw_sample, landmark_roi

SIZE = 256
PER_IMAGE = (
    "_kpt.txt",
    "_vertices.npy",
    "_texture.png",
    ".obj",
    ".ply",
    "_pose.json",
    "_depth.png",
    "_preview.png",
)


@pytest.fixture(scope="module")
def workspace(embedded_model, tmp_path_factory):
    """A model folder, tiny weights, and a folder with two synthetic images: ``face0`` with an
    AFLW-style .mat beside it, ``face1`` with a box in boxes.json."""
    root = tmp_path_factory.mktemp("cli")
    save_bfm(embedded_model, root / "face_model")
    torch.manual_seed(0)
    save_weights(root / "model.pt", PRNet(width=4))
    images = root / "images"
    images.mkdir()
    samples = [draw_sample(embedded_model, SIZE, np.random.default_rng(seed)) for seed in (3, 5)]
    s = samples[0]
    write_aflw_sample(
        images,
        "face0",
        s.image,
        pose_para=s.pose_para,
        shape_para=s.shape_para,
        exp_para=s.exp_para,
        pt2d=aflw21_points(s.landmarks),
        pt3d_68=s.landmarks.T,
        roi=landmark_roi(s.landmarks),
    )
    atomic_save_jpeg(images / "face1.jpg", samples[1].image)
    lo, hi = samples[1].landmarks[:, :2].min(axis=0), samples[1].landmarks[:, :2].max(axis=0)
    boxes = root / "boxes.json"
    boxes.write_text(json.dumps({"face1.jpg": [lo[0], hi[0], lo[1], hi[1]]}))
    return root, images, boxes


def _obj_counts(path: Path) -> tuple[int, int, int]:
    v = f = top = 0
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            v += 1
        elif line.startswith("f "):
            f += 1
            top = max(top, *(int(x.split("/")[0]) for x in line.split()[1:]))
    return v, f, top


def test_predict_writes_every_output_for_a_folder(workspace, capsys) -> None:
    root, images, boxes = workspace
    out = root / "out"
    rc = cli.main(
        [
            "predict",
            str(images),
            "--out",
            str(out),
            "--weights",
            str(root / "model.pt"),
            "--model-dir",
            str(root / "face_model"),
            "--boxes",
            str(boxes),
            "--swap",
            str(images / "face0.jpg"),
            "--save-posmap",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    for name in ("face0", "face1"):
        for suffix in PER_IMAGE + ("_swap.png", "_posmap.npy"):
            assert (out / f"{name}{suffix}").is_file(), f"{name}{suffix} missing"
        kpt = np.loadtxt(out / f"{name}_kpt.txt")
        verts = np.load(out / f"{name}_vertices.npy")
        assert kpt.shape == (68, 3) and verts.ndim == 2 and verts.shape[1] == 3
        assert np.load(out / f"{name}_posmap.npy").shape == (256, 256, 3)
        nv, nf, top = _obj_counts(out / f"{name}.obj")
        assert nv == len(verts) and nf > len(verts) and top <= nv
        ply_head = (out / f"{name}.ply").read_bytes()[:500]
        assert f"element vertex {len(verts)}".encode() in ply_head
        assert b"format binary_little_endian 1.0" in ply_head
        obj_text = (out / f"{name}.obj").read_text()
        assert f"mtllib {name}.mtl" in obj_text and obj_text.count("\nvt ") == len(verts)
        assert f"map_Kd {name}_texture.png" in (out / f"{name}.mtl").read_text()
        pose = json.loads((out / f"{name}_pose.json").read_text())
        assert {"pitch_deg", "yaw_deg", "roll_deg", "rotation", "scale"} <= set(pose)
        assert np.asarray(Image.open(out / f"{name}_texture.png")).shape == (256, 256, 3)
        assert np.asarray(Image.open(out / f"{name}_depth.png")).shape == (SIZE, SIZE)
        assert np.asarray(Image.open(out / f"{name}_preview.png")).shape == (SIZE, SIZE, 3)
        assert np.asarray(Image.open(out / f"{name}_swap.png")).shape == (SIZE, SIZE, 3)
    assert "face1" in capsys.readouterr().out


def forbidden(*args, **kwargs):
    raise AssertionError("not needed for these outputs")


def _predict(root, images, boxes, out, *extra) -> int:
    return cli.main(
        [
            "predict",
            str(images),
            "--out",
            str(out),
            "--weights",
            str(root / "model.pt"),
            "--model-dir",
            str(root / "face_model"),
            "--boxes",
            str(boxes),
            "--device",
            "cpu",
            *extra,
        ]
    )


def test_outputs_chosen_are_the_only_work_and_keep_their_bytes(
    workspace, tmp_path, monkeypatch
) -> None:
    root, images, boxes = workspace
    full = tmp_path / "full"
    assert _predict(root, images, boxes, full, "--ply-ascii") == 0
    assert b"format ascii 1.0" in (full / "face0.ply").read_bytes()[:40]

    for name in ("vertex_colors", "render_raster", "draw_landmarks", "face_pose"):
        monkeypatch.setattr(cli, name, forbidden)
    only = tmp_path / "kpt"
    assert _predict(root, images, boxes, only, "--outputs", "kpt,vertices") == 0
    for name in ("face0", "face1"):
        for suffix in ("_kpt.txt", "_vertices.npy"):
            assert (only / f"{name}{suffix}").read_bytes() == (
                full / f"{name}{suffix}"
            ).read_bytes()
    assert sorted(p.name for p in only.iterdir()) == sorted(
        [f"face{k}{s}" for k in (0, 1) for s in ("_kpt.txt", "_vertices.npy")] + ["report.csv"]
    )
    monkeypatch.undo()
    pose = tmp_path / "pose"
    assert _predict(root, images, boxes, pose, "--outputs", "pose,posmap") == 0
    assert (pose / "face1_pose.json").read_bytes() == (full / "face1_pose.json").read_bytes()
    assert np.load(pose / "face1_posmap.npy").shape == (256, 256, 3)
    assert not (pose / "face1_kpt.txt").exists()
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["predict", "x.jpg", "--outputs", "kpt,mesh"])


def _dome_faces(monkeypatch) -> None:
    """Replace the tiny random network's (collapsed) maps by a dome over the image."""
    from model.api import PRN

    original = PRN.finish
    cols, rows = np.meshgrid(np.arange(256.0), np.arange(256.0))
    bump = np.cos((cols - 128) / 300 * np.pi) * np.cos((rows - 128) / 300 * np.pi)
    dome = np.stack([30 + 0.75 * cols, 25 + 0.8 * rows, 20 + 80 * bump], axis=-1)

    def finish(self, *args, **kwargs):
        faces = original(self, *args, **kwargs)
        for face in faces:
            face.posmap = dome.astype(np.float32)
        return faces

    monkeypatch.setattr(PRN, "finish", finish)


def test_depth_only_prnet_convention_crop_and_16bit(workspace, tmp_path, monkeypatch) -> None:
    root, images, boxes = workspace
    _dome_faces(monkeypatch)
    full = tmp_path / "full"
    assert _predict(root, images, boxes, full, "--outputs", "depth,vertices") == 0
    d8 = np.asarray(Image.open(full / "face1_depth.png"))
    verts = np.load(full / "face1_vertices.npy")
    assert d8.shape == (SIZE, SIZE) and d8.dtype == np.uint8 and d8.max() > 200
    # PRNet's convention: z / max z of the mesh x 255 on the z-buffer
    from model.visibility import depth_image

    z, mask = depth_image(verts, load_layout(model_dir=root / "face_model").triangles, SIZE, SIZE)
    assert np.array_equal(d8[mask], np.rint(np.clip(z[mask] / verts[:, 2].max(), 0, 1) * 255))
    assert not d8[~mask].any()
    minmax = tmp_path / "minmax"
    assert (
        _predict(root, images, boxes, minmax, "--outputs", "depth", "--depth-norm", "minmax") == 0
    )
    mm = np.asarray(Image.open(minmax / "face1_depth.png"))
    assert mm[mask].min() == 1 and mm.max() == 255

    for name in ("vertex_colors", "render_raster", "landmarks", "face_pose"):
        monkeypatch.setattr(cli, name, forbidden)  # the dome stays
    crop = tmp_path / "crop"
    rc = _predict(
        root, images, boxes, crop, "--outputs", "depth", "--depth-size", "64", "--depth-16bit"
    )
    assert rc == 0
    assert sorted(p.name for p in crop.iterdir()) == [
        "face0_depth.png",
        "face1_depth.png",
        "report.csv",
    ]
    d16 = np.asarray(Image.open(crop / "face1_depth.png"))
    assert d16.shape == (64, 64) and d16.dtype == np.uint16
    assert d16.max() > 50_000 and (d16 > 0).mean() > 0.2, "the face lies in the crop"


class FakeDetector:
    """Stands in for dlib: the given boxes for every image."""

    boxes: list = []

    def __init__(self, weights=None):
        self.weights = weights

    def __call__(self, image):
        return list(self.boxes)


@pytest.fixture()
def fake_detector(monkeypatch):
    import model.api

    monkeypatch.setattr(model.api, "FaceDetector", FakeDetector)
    FakeDetector.boxes = []
    return FakeDetector


def run_args(root: Path) -> list[str]:
    """The arguments every run over the workspace ``root`` shares: its weights, model, CPU."""
    weights, model = str(root / "model.pt"), str(root / "face_model")
    return ["--weights", weights, "--model-dir", model, "--device", "cpu"]


def test_images_without_a_face_are_reported_and_the_others_go_on(
    workspace, fake_detector, capsys
) -> None:
    root, images, _ = workspace
    common = run_args(root)
    out = root / "noface"
    # face0 has its .mat (landmarks win over the detector); face1 has nothing and no face is found
    rc = cli.main(["predict", str(images), "--out", str(out)] + common)
    assert rc == 0
    assert (out / "face0_kpt.txt").is_file() and not (out / "face1_kpt.txt").exists()
    err = capsys.readouterr().err
    assert "face1.jpg: no face detected" in err and "Traceback" not in err
    report = (out / "report.csv").read_text().splitlines()
    assert report[0] == "image,faces,status,detail"
    assert any("face0.jpg,1,ok," in r for r in report) and any(
        "face1.jpg,0,no_face" in r for r in report
    )
    # no image gave output: exit status 1
    rc = cli.main(["predict", str(images / "face1.jpg"), "--out", str(root / "none")] + common)
    assert rc == 1
    assert "face1.jpg: no face detected" in capsys.readouterr().err


def test_detector_faces_all_or_largest(workspace, fake_detector, capsys) -> None:
    from model.detector import FaceBox

    root, images, _ = workspace
    fake_detector.boxes = [FaceBox(10, 60, 10, 60, 0.9), FaceBox(60, 200, 50, 210, 0.2)]
    common = run_args(root)
    out = root / "all"
    assert (
        cli.main(["predict", str(images / "face1.jpg"), "--out", str(out), "--all-faces"] + common)
        == 0
    )
    assert (out / "face1_face0_kpt.txt").is_file() and (out / "face1_face1_kpt.txt").is_file()
    big = np.loadtxt(out / "face1_face0_kpt.txt")
    out = root / "largest"
    assert cli.main(["predict", str(images / "face1.jpg"), "--out", str(out)] + common) == 0
    assert np.array_equal(
        np.loadtxt(out / "face1_kpt.txt"), big
    )  # the largest face, named as the image
    assert not (out / "face1_face1_kpt.txt").exists()


def test_boxes_outside_the_image_or_degenerate_are_one_line_reports(
    workspace, tmp_path, capsys
) -> None:
    root, images, _ = workspace
    boxes = tmp_path / "boxes.json"
    boxes.write_text(
        json.dumps({"face0.jpg": [300, 400, 10, 100], "face1.jpg": [10, 10.5, 10, 10.5]})
    )
    rc = cli.main(
        [
            "predict",
            str(images),
            "--out",
            str(tmp_path / "out"),
            "--boxes",
            str(boxes),
            "--weights",
            str(root / "model.pt"),
            "--model-dir",
            str(root / "face_model"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert (
        "face0.jpg: face box [left 300, right 400, top 10, bottom 100] "
        "lies entirely outside the 256x256 image" in err
    )
    assert "face1.jpg: face box is degenerate (0.5 x 0.5 px" in err
    assert "Traceback" not in err and not list((tmp_path / "out").glob("*_kpt.txt"))


def test_real_dlib_detector_through_the_command_line(tmp_path, embedded_model, capsys) -> None:
    """No box, no landmarks: dlib's HOG detector finds the rendered synthetic face (sample 0)."""
    pytest.importorskip("dlib")
    from uvgen.synth.dataset import draw_sample, sample_rng

    s = draw_sample(embedded_model, 450, sample_rng(0, 0))
    atomic_save_jpeg(tmp_path / "photo.jpg", s.image)
    save_bfm(embedded_model, tmp_path / "face_model")
    torch.manual_seed(0)
    save_weights(tmp_path / "model.pt", PRNet(width=2))
    rc = cli.main(
        [
            "predict",
            str(tmp_path / "photo.jpg"),
            "--out",
            str(tmp_path / "out"),
            "--weights",
            str(tmp_path / "model.pt"),
            "--model-dir",
            str(tmp_path / "face_model"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    assert (tmp_path / "out" / "photo_kpt.txt").is_file()
    assert "photo.jpg,1,ok," in (tmp_path / "out" / "report.csv").read_text()


def test_import_weights_and_predict_with_prnets_uv_data(
    tmp_path, prnet_uv_dir, workspace, capsys
) -> None:
    root, images, boxes = workspace
    golden = Path(__file__).resolve().parents[1] / "fixtures" / "tf_golden" / "model"
    assert cli.main(["import-weights", str(golden), "--out", str(tmp_path / "release.pt")]) == 0
    assert "PRNet width 2" in capsys.readouterr().out
    common = ["--weights", str(tmp_path / "release.pt"), "--boxes", str(boxes), "--device", "cpu"]
    # the release's layout is PRNet's: without --uv-data the run stops with a one-line error
    rc = cli.main(
        [
            "predict",
            str(images / "face1.jpg"),
            "--out",
            str(tmp_path / "x"),
            "--model-dir",
            str(root / "face_model"),
        ]
        + common
    )
    assert rc == 1 and "need PRNet's UV layout" in capsys.readouterr().err
    rc = cli.main(
        [
            "predict",
            str(images / "face1.jpg"),
            "--out",
            str(tmp_path / "out"),
            "--uv-data",
            str(prnet_uv_dir),
        ]
        + common
    )
    assert rc == 0
    assert np.load(tmp_path / "out" / "face1_vertices.npy").shape == (43_867, 3)
    # a bad checkpoint is a one-line error naming the file
    rc = cli.main(["import-weights", str(tmp_path / "nothing"), "--out", str(tmp_path / "n.pt")])
    assert rc == 1 and "nothing.index: missing checkpoint index file" in capsys.readouterr().err


def test_list_images_takes_files_folders_and_patterns(workspace) -> None:
    _, images, _ = workspace
    both = [images / "face0.jpg", images / "face1.jpg"]
    assert cli.list_images([str(images)]) == both
    assert cli.list_images([str(images / "face*.jpg"), str(images / "face0.jpg")]) == both
    with pytest.raises(DataError):
        cli.list_images([str(images / "nothing*.png")])


def test_faces_from_boxes_and_landmark_files(tmp_path, workspace) -> None:
    _, images, boxes = workspace
    spec = cli.face_spec(images / "face1.jpg", cli.load_boxes(boxes), None)
    assert spec.bbox is not None and spec.points is None
    spec = cli.face_spec(images / "face0.jpg", cli.load_boxes(boxes), None)
    assert spec.points.shape == (68, 3)
    # 300W-LP style: pt2d (2, 68) only, in another folder
    atomic_savemat(tmp_path / "face1.mat", {"pt2d": np.ones((2, 68)) * 50})
    spec = cli.face_spec(images / "face1.jpg", None, tmp_path)
    assert spec.points.shape == (68, 2)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x.jpg": [10, 5, 0, 20]}))
    with pytest.raises(DataError, match="x.jpg"):
        cli.load_boxes(bad)
    atomic_savemat(tmp_path / "face0.mat", {"pt2d": np.ones((2, 21))})
    with pytest.raises(DataError, match="pt3d_68"):
        cli.face_spec(images / "face0.jpg", None, tmp_path)


def test_console_script_is_declared() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'prnet = "pipeline.console:prnet"' in text  # pipeline.cli.main under pipeline.stage.run


def test_detector_problems_stop_the_run_with_one_line(
    workspace, tmp_path, monkeypatch, capsys
) -> None:
    root, images, _ = workspace
    common = run_args(root)
    pytest.importorskip("dlib")
    rc = cli.main(
        [
            "predict",
            str(images / "face1.jpg"),
            "--out",
            str(tmp_path / "a"),
            "--detector-weights",
            str(tmp_path / "mmod_human_face_detector.dat"),
        ]
        + common
    )
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mmod_human_face_detector.dat: missing face detector file" in err[0]
    import sys

    monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib-bin were not installed
    rc = cli.main(["predict", str(images / "face1.jpg"), "--out", str(tmp_path / "b")] + common)
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "face1.jpg" in err[0] and "pip install dlib-bin" in err[0]


def test_weights_that_are_not_a_prn_model_are_one_line_errors(workspace, tmp_path, capsys) -> None:
    """A baseline's model.pt, random bytes, a .mat and a Git LFS pointer given as --weights; an
    LFS pointer given to import-weights; a box of 1e300 px."""
    root, images, boxes = workspace
    baseline = tmp_path / "3ddfa.pt"
    torch.save({"model": {}, "meta": {"kind": "3ddfa", "width": 0.5}}, baseline)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    mat = images / "face0.mat"
    pointer = tmp_path / "pointer.pt"
    pointer.write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 5\n"
    )
    common = ["--boxes", str(boxes), "--device", "cpu", "--model-dir", str(root / "face_model")]
    expected = {
        baseline: "a 3DDFA-style baseline, not a PRN model",
        noise: "not a PyTorch file of this project",
        mat: "not a PyTorch file of this project",
        pointer: "a Git LFS pointer, not the data: fetch it with `git lfs pull`",
    }
    for weights, reason in expected.items():
        out = tmp_path / f"out_{weights.stem}"
        argv = ["predict", str(images / "face1.jpg"), "--out", str(out), "--weights", str(weights)]
        assert cli.main(argv + common) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"prnet: error: {weights}: {reason}"), err
    golden = Path(__file__).resolve().parents[1] / "fixtures" / "tf_golden"
    lfs = tmp_path / "lfs"
    lfs.mkdir()
    (lfs / "model.index").write_bytes((golden / "model.index").read_bytes())
    (lfs / "model.data-00000-of-00001").write_text(pointer.read_text())
    assert cli.main(["import-weights", str(lfs / "model"), "--out", str(tmp_path / "r.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"prnet: error: {lfs / 'model.data-00000-of-00001'}: a Git LFS pointer")
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"face1.jpg": [0, 1e300, 0, 1e300]}))
    argv = [
        "predict",
        str(images / "face1.jpg"),
        "--out",
        str(tmp_path / "h"),
        "--boxes",
        str(huge),
    ]
    rc = cli.main(
        argv
        + [
            "--weights",
            str(root / "model.pt"),
            "--device",
            "cpu",
            "--model-dir",
            str(root / "face_model"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "face1.jpg: face box is too large (1e+300 x 1e+300 px" in err, err


def test_import_weights_into_a_folder_fails_at_the_start(tmp_path, capsys) -> None:
    golden = Path(__file__).resolve().parents[1] / "fixtures" / "tf_golden" / "model"
    out = tmp_path / "release.pt"
    out.mkdir()
    assert cli.main(["import-weights", str(golden), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"prnet: error: {out}: is a folder; an output file is expected here"
    assert not any(out.iterdir()) and [p.name for p in tmp_path.iterdir()] == ["release.pt"]
