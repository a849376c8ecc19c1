"""``prnet predict`` over a folder through the pipeline (pipeline/predict_stream.py): the same
bytes, messages and report as one image at a time, video frames, and an interrupt."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import save_weights
from model.prnet import PRNet
from pipeline import cli, predict_stream
from uvgen.formats.bfm import save_bfm
from uvgen.formats.matfile import atomic_save_jpeg
from uvgen.synth.dataset import draw_sample

SIZE = 200


@pytest.fixture(scope="module")
def folder(embedded_model, tmp_path_factory):
    """Seven images: five with boxes (one of them outside its image), one unreadable, one for the
    detector; the weights, the model folder and boxes.json."""
    root = tmp_path_factory.mktemp("stream")
    save_bfm(embedded_model, root / "face_model")
    torch.manual_seed(1)
    save_weights(root / "model.pt", PRNet(width=4))
    images = root / "images"
    images.mkdir()
    boxes = {}
    for k in range(5):
        s = draw_sample(embedded_model, SIZE, np.random.default_rng(10 + k))
        atomic_save_jpeg(images / f"img{k}.jpg", s.image)
        lo, hi = s.landmarks[:, :2].min(axis=0), s.landmarks[:, :2].max(axis=0)
        boxes[f"img{k}.jpg"] = [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]
    boxes["img3.jpg"] = [500.0, 600.0, 500.0, 600.0]  # outside the image: an error row
    (images / "img2b.jpg").write_bytes(b"not a jpeg")  # unreadable: an error row
    boxes["img2b.jpg"] = [10.0, 50.0, 10.0, 50.0]
    s = draw_sample(embedded_model, SIZE, np.random.default_rng(20))
    atomic_save_jpeg(images / "nobox.jpg", s.image)  # the (fake) detector finds no face
    (root / "boxes.json").write_text(json.dumps(boxes))
    return root, images


class NoFaces:
    def __init__(self, weights=None):
        pass

    def __call__(self, image):
        return []


def _run(root: Path, inputs: list[str], out: Path, *extra: str) -> int:
    return cli.main(
        ["predict", *inputs, "--out", str(out), "--weights", str(root / "model.pt")]
        + ["--model-dir", str(root / "face_model"), "--boxes", str(root / "boxes.json")]
        + ["--device", "cpu", *extra]
    )


def _messages(stderr: str) -> list[str]:
    """The ``prnet:`` messages on stderr (the progress bar shares their lines)."""
    return re.findall(r"prnet: [^\r\n]*", stderr)


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_folder_pipeline_equals_one_at_a_time(folder, tmp_path, monkeypatch, capsys) -> None:
    import model.api

    monkeypatch.setattr(model.api, "FaceDetector", NoFaces)
    root, images = folder
    runs = {}
    for label, extra in (
        ("serial", ("--workers", "0", "--batch-size", "1")),
        ("pipelined", ("--workers", "3", "--batch-size", "3")),
        ("one_worker", ("--workers", "1", "--batch-size", "2")),
        ("overlapped", ("--workers", "2", "--batch-size", "2")),
    ):
        out = tmp_path / label
        # on the CPU the stages take turns; "overlapped" runs them side by side, as on a GPU
        overlap = functools.partial(predict_stream.run_stream, overlap=label == "overlapped")
        monkeypatch.setattr(cli, "run_stream", overlap)
        assert _run(root, [str(images)], out, "--outputs", "all", *extra) == 0
        captured = capsys.readouterr()
        runs[label] = (
            _files(out),
            captured.out.replace(str(out), "OUT"),
            [m.replace(str(out), "OUT") for m in _messages(captured.err)],
        )
    files, stdout, errors = runs["serial"]
    report = files["report.csv"].decode().splitlines()
    assert [r.split(",")[0].rsplit("/", 1)[1] for r in report[1:]] == [
        "img0.jpg",
        "img1.jpg",
        "img2.jpg",
        "img2b.jpg",
        "img3.jpg",
        "img4.jpg",
        "nobox.jpg",
    ]
    assert [r.split(",")[2] for r in report[1:]] == ["ok"] * 3 + ["error"] * 2 + ["ok", "no_face"]
    assert len(errors) == 4 and stdout.count(" -> OUT/") == 4
    assert "img0_depth.png" in files and "img4.obj" in files
    for label in ("pipelined", "one_worker", "overlapped"):
        assert runs[label][0].keys() == files.keys()
        for name, data in files.items():
            assert runs[label][0][name] == data, f"{label}: {name} differs"
        assert runs[label][1] == stdout and runs[label][2] == errors


def test_an_interrupt_leaves_whole_files_and_stops(folder, tmp_path, monkeypatch) -> None:
    root, images = folder
    original = cli.write_outputs
    calls = []

    def write_outputs(out_dir, name, *args, **kwargs):
        calls.append(name)
        if name == "img1":
            raise KeyboardInterrupt
        return original(out_dir, name, *args, **kwargs)

    monkeypatch.setattr(cli, "write_outputs", write_outputs)
    out = tmp_path / "stopped"
    inputs = [str(images / f"img{k}.jpg") for k in (0, 1, 2, 4)]
    with pytest.raises(KeyboardInterrupt):
        _run(root, inputs, out, "--outputs", "kpt,texture", "--workers", "2", "--batch-size", "1")
    names = sorted(p.name for p in out.iterdir())
    assert not any(n.startswith(".") or n.endswith(".tmp") for n in names)  # no temporaries
    assert "report.csv" not in names  # the report is written only by a run that finished
    for n in names:  # every file there is whole
        if n.endswith("_kpt.txt"):
            assert np.loadtxt(out / n).shape == (68, 3)
    assert "img1_kpt.txt" not in names


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_a_video_gives_per_frame_outputs_equal_to_its_frame_folder(
    folder, embedded_model, tmp_path
) -> None:
    from PIL import Image

    from pipeline.video import read_frames

    root, _ = folder
    samples = [draw_sample(embedded_model, SIZE, np.random.default_rng(30 + k)) for k in range(3)]
    video = tmp_path / "clip.mp4"
    _write_video(video, [s.image for s in samples])
    frames = list(read_frames(video))
    assert len(frames) == 3 and frames[0].shape == (SIZE, SIZE, 3)
    frame_dir = tmp_path / "frames"
    frame_dir.mkdir()
    boxes = {}
    for k, (s, frame) in enumerate(zip(samples, frames)):
        Image.fromarray(frame).save(frame_dir / f"clip_frame_{k:06d}.png")  # lossless
        lo, hi = s.landmarks[:, :2].min(axis=0), s.landmarks[:, :2].max(axis=0)
        boxes[f"clip_frame_{k:06d}"] = [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]
    boxes_path = tmp_path / "boxes.json"
    boxes_path.write_text(json.dumps(boxes))
    outs = {}
    for label, source in (("video", video), ("frames", frame_dir)):
        out = tmp_path / f"out_{label}"
        rc = cli.main(
            ["predict", str(source), "--out", str(out), "--weights", str(root / "model.pt")]
            + ["--model-dir", str(root / "face_model"), "--boxes", str(boxes_path)]
            + ["--device", "cpu", "--outputs", "kpt,depth", "--workers", "2"]
        )
        assert rc == 0
        outs[label] = _files(out)
    video_report = outs["video"].pop("report.csv").decode().splitlines()
    assert video_report[1:] == [f"{video}#frame_{k:06d},1,ok," for k in range(3)]
    outs["frames"].pop("report.csv")
    assert sorted(outs["video"]) == sorted(
        f"clip_frame_{k:06d}{s}" for k in range(3) for s in ("_kpt.txt", "_depth.png")
    )
    assert outs["video"] == outs["frames"]


def test_an_unreadable_video_or_missing_pyav_is_one_line(folder, tmp_path, monkeypatch, capsys):
    import sys

    root, images = folder
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    assert _run(root, [str(bad)], tmp_path / "o1", "--workers", "0") == 1
    err = _messages(capsys.readouterr().err)
    assert err[0].startswith(f"prnet: {bad}: ") and f"{bad}: not a readable video (" in err[0]
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed: the images still go on
    out = tmp_path / "o2"
    assert _run(root, [str(bad), str(images / "img0.jpg")], out, "--workers", "2") == 0
    err = _messages(capsys.readouterr().err)
    assert f"{bad}: reading a video needs PyAV" in err[0]
    report = (out / "report.csv").read_text().splitlines()
    assert report[1].startswith(f"{bad},0,error,") and report[2].endswith("img0.jpg,1,ok,")
