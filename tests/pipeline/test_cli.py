"""The ``prnet predict`` command line, end to end on synthetic images with a tiny random network."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.checkpoint import save_weights
from model.prnet import PRNet
from pipeline import cli
from uvgen.formats.aflw import write_aflw_sample
from uvgen.formats.bfm import save_bfm
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import atomic_save_jpeg, atomic_savemat
from uvgen.synth.dataset import aflw21_points, draw_sample, landmark_roi

SIZE = 256
PER_IMAGE = ("_kpt.txt", "_vertices.npy", "_texture.png", ".obj", ".ply", "_pose.json", "_depth.png",
             "_preview.png")


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
    write_aflw_sample(images, "face0", s.image, pose_para=s.pose_para, shape_para=s.shape_para,
                      exp_para=s.exp_para, pt2d=aflw21_points(s.landmarks), pt3d_68=s.landmarks.T,
                      roi=landmark_roi(s.landmarks))
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
            top = max(top, *(int(x) for x in line.split()[1:]))
    return v, f, top


def test_predict_writes_every_output_for_a_folder(workspace, capsys) -> None:
    root, images, boxes = workspace
    out = root / "out"
    rc = cli.main(["predict", str(images), "--out", str(out), "--weights", str(root / "model.pt"),
                   "--model-dir", str(root / "face_model"), "--boxes", str(boxes),
                   "--swap", str(images / "face0.jpg"), "--save-posmap", "--device", "cpu"])
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
        assert f"element vertex {len(verts)}" in (out / f"{name}.ply").read_text()[:500]
        pose = json.loads((out / f"{name}_pose.json").read_text())
        assert {"pitch_deg", "yaw_deg", "roll_deg", "rotation", "scale"} <= set(pose)
        assert np.asarray(Image.open(out / f"{name}_texture.png")).shape == (256, 256, 3)
        assert np.asarray(Image.open(out / f"{name}_depth.png")).shape == (SIZE, SIZE)
        assert np.asarray(Image.open(out / f"{name}_preview.png")).shape == (SIZE, SIZE, 3)
        assert np.asarray(Image.open(out / f"{name}_swap.png")).shape == (SIZE, SIZE, 3)
    assert "face1" in capsys.readouterr().out


def test_predict_without_a_face_names_the_image(workspace, capsys) -> None:
    root, images, _ = workspace
    rc = cli.main(["predict", str(images / "face1.jpg"), "--out", str(root / "none"),
                   "--weights", str(root / "model.pt"), "--model-dir", str(root / "face_model")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "face1.jpg" in err and "no face given" in err
    assert not (root / "none").exists()


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
    assert 'prnet = "pipeline.cli:main"' in text
