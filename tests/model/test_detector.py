"""The face detector: dlib's HOG detector on a synthetic face the project renders and on real
photographs (fixtures), its CNN detector's file errors, face selection, and region checks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from model import detector as D
from uvgen.formats.errors import DataError

needs_dlib = pytest.mark.skipif(
    importlib.util.find_spec("dlib") is None,
    reason="dlib (the dlib-bin wheel, a project dependency) is not installed",
)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """IoU of two (left, right, top, bottom) boxes."""
    w = min(a[1], b[1]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[2], b[2])
    inter = max(w, 0) * max(h, 0)
    area = lambda r: (r[1] - r[0]) * (r[3] - r[2])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _points_box(points: np.ndarray) -> tuple[float, float, float, float]:
    return (points[:, 0].min(), points[:, 0].max(), points[:, 1].min(), points[:, 1].max())


@needs_dlib
def test_hog_finds_a_rendered_synthetic_face(embedded_model) -> None:
    """Sample 0 of seed 0 (a near-frontal head, 450 px) is found where its 68 landmarks are."""
    from uvgen.synth.dataset import draw_sample, sample_rng

    s = draw_sample(embedded_model, 450, sample_rng(0, 0))
    faces = D.FaceDetector()(s.image)
    assert len(faces) >= 1
    assert _iou(faces[0].bbox, _points_box(s.landmarks)) > 0.5  # measured 0.66
    assert D.FaceDetector()(np.full((300, 300, 3), 128, np.uint8)) == []  # a flat grey image


@needs_dlib
def test_hog_finds_real_faces_where_their_landmarks_are(aflw_fixture_dir: Path) -> None:
    from uvgen.formats.matfile import load_mat, read_jpeg

    det = D.FaceDetector()
    found = 0
    names = sorted(aflw_fixture_dir.glob("*.jpg"))
    for path in names:
        faces = det(read_jpeg(path))
        if faces:
            pts = np.asarray(load_mat(path.with_suffix(".mat"))["pt3d_68"]).T
            assert _iou(faces[0].bbox, _points_box(pts)) > 0.3, path.name  # dlib's box is tighter
            found += 1
    assert (
        found >= len(names) // 2
    )  # measured: 13 of 17 (profile faces are missed, as dlib's HOG does)


@needs_dlib
def test_cnn_detector_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="mmod_human_face_detector.dat: missing face detector file"):
        D.FaceDetector(tmp_path / "mmod_human_face_detector.dat")
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"not a detector")
    with pytest.raises(DataError, match="bad.dat: not a dlib CNN face detector file"):
        D.FaceDetector(bad)


def test_select_faces_largest_or_all() -> None:
    small = D.FaceBox(0, 10, 0, 10, 2.0)
    big = D.FaceBox(50, 150, 50, 150, 0.5)
    assert D.select_faces([small, big], all_faces=False) == [big]
    assert D.select_faces([small, big], all_faces=True) == [big, small]
    assert D.select_faces([], all_faces=False) == []


def test_regions_outside_or_degenerate_are_refused() -> None:
    D.check_face_region(-20, 30, -20, 30, 100, 80)  # partly outside: fine
    with pytest.raises(D.FaceRegionError, match="entirely outside the 100x80 image"):
        D.check_face_region(120, 180, 10, 60, 100, 80)
    with pytest.raises(D.FaceRegionError, match="entirely outside"):
        D.check_face_region(10, 60, -90, -10, 100, 80)
    with pytest.raises(D.FaceRegionError, match=r"degenerate \(0.5 x 0.5 px"):
        D.check_face_region(10, 10.5, 10, 10.5, 100, 80)
    with pytest.raises(D.FaceRegionError, match="non-finite"):
        D.check_face_region(np.nan, 10, 0, 10, 100, 80)


def test_missing_dlib_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(D.DetectorUnavailable, match="pip install dlib-bin"):
        D.FaceDetector()


@needs_dlib
def test_cnn_detector_finds_a_real_face_the_hog_detector_misses(aflw_fixture_dir) -> None:
    """PRNet's CNN (MMOD) detector, from ../shared/fixtures/prnet_release: image00251 (|yaw| 55
    degrees) is missed by HOG and found by the CNN, its box on the ground-truth landmarks.
    Measured over the 26 real fixtures: HOG 14/26 (13 of the 17 regular), CNN 22/26 (17/17)."""
    import scipy.io as sio

    from uvgen.formats.matfile import read_jpeg

    weights = aflw_fixture_dir.parent / "prnet_release" / "mmod_human_face_detector.dat"
    if not weights.is_file():
        pytest.skip(f"{weights} is absent")
    image = read_jpeg(aflw_fixture_dir / "image00251.jpg")
    assert D.FaceDetector()(image) == []
    boxes = D.FaceDetector(weights)(image)
    assert len(boxes) == 1
    pts = sio.loadmat(aflw_fixture_dir / "image00251.mat")["pt3d_68"][:2].T
    assert _iou(boxes[0].bbox, _points_box(pts)) > 0.3
