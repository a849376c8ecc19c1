"""The Python API: PRNet's demo pipeline (detector box -> crop -> network -> map -> landmarks,
vertices, pose, texture) against a reference written from the conventions, and face selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model import api
from model.detector import FaceBox, FaceRegionError
from model.prnet import MAP_SCALE

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "tf_golden"


@pytest.fixture(scope="module")
def prn(prnet_uv_dir: Path) -> api.PRN:
    """The TensorFlow golden checkpoint (width 2) read as a release, with PRNet's uv-data."""
    torch.manual_seed(0)
    return api.PRN.from_tf_checkpoint(GOLDEN / "model", uv_data=prnet_uv_dir, device="cpu")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:300, 0:400]
    img = np.stack([xx * 0.5, yy * 0.7, 128 + 60 * np.sin(xx / 17.0)], axis=-1) + rng.normal(
        0, 8, (300, 400, 3)
    )
    return np.clip(img, 0, 255).astype(np.uint8)


class FakeDetector:
    def __init__(self, faces: list[FaceBox]):
        self.faces = faces

    def __call__(self, image: np.ndarray) -> list[FaceBox]:
        return list(self.faces)


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Reference bilinear read with zeros outside (float image)."""
    h, w = img.shape[:2]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    out = np.zeros(x.shape + (img.shape[2],))
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            out[ok] += wgt[ok][:, None] * img[yi[ok], xi[ok]]
    return out


def test_detector_box_pipeline_is_prnets_demo(
    prn: api.PRN, photo: np.ndarray, prnet_uv_dir: Path
) -> None:
    """PRNet's demo for a detector box, written out: centre moved down 0.14 * old_size, side
    int(1.58 * old_size), the similarity to 256x256, input image / 255, output * 256 * 1.1,
    back through the inverse; landmarks at uv_kpt_ind, vertices at face_ind."""
    left, right, top, bottom = 120.0, 260.0, 70.0, 230.0
    prn._detector = FakeDetector([FaceBox(left, right, top, bottom, 1.0)])
    face = prn.process(photo)[0]

    old = (right - left + bottom - top) / 2
    cx, cy = right - (right - left) / 2, bottom - (bottom - top) / 2 + 0.14 * old
    size = int(old * 1.58)
    s = 255.0 / size
    u, v = np.meshgrid(np.arange(256), np.arange(256))
    crop = _bilinear(photo / 255.0, cx - size / 2 + u / s, cy - size / 2 + v / s)
    ours, t = prn.predictor.crop(photo, bbox=(left, right, top, bottom))
    assert np.abs(ours / 255.0 - crop).max() < 1e-5  # the float crop itself, nothing rounded
    # (this random network is chaotic: float32 crop rounding alone moves its output by 0.1 px,
    # so the network is fed the project's crop and the rest of the pipeline is checked)
    net = prn.predictor.net
    with torch.no_grad():
        x = torch.from_numpy(ours.transpose(2, 0, 1)[None].copy()).float() / 255.0
        out = net(x.contiguous(memory_format=torch.channels_last)).numpy()[0].transpose(1, 2, 0)
    pos = out * 256 * 1.1
    ref = np.stack(
        [pos[..., 0] / s + cx - size / 2, pos[..., 1] / s + cy - size / 2, pos[..., 2] / s], axis=-1
    )
    kpt = np.loadtxt(prnet_uv_dir / "uv_kpt_ind.txt").astype(int)
    face_ind = np.loadtxt(prnet_uv_dir / "face_ind.txt").astype(int)
    assert np.abs(face.posmap - ref).max() < 1e-3
    assert np.abs(face.landmarks - ref[kpt[1], kpt[0]]).max() < 1e-3
    assert np.abs(face.vertices - ref.reshape(-1, 3)[face_ind]).max() < 1e-3
    assert face.box is not None and face.box.bbox == (left, right, top, bottom)
    assert np.isfinite(face.pose.degrees).all()
    tex = face.texture()
    assert (
        tex.shape == (256, 256, 3) and tex.dtype == np.uint8 and tex[~prn.uv.face_mask].max() == 0
    )
    seen = face.texture(visible_only=True)
    assert seen.shape == tex.shape and np.all(
        (seen == 0) | (seen == tex)
    )  # a subset of the texture
    assert MAP_SCALE == 256 * 1.1


def test_largest_or_all_faces_and_no_face(prn: api.PRN, photo: np.ndarray) -> None:
    small, big = FaceBox(20, 80, 20, 80, 3.0), FaceBox(150, 300, 60, 220, 0.1)
    prn._detector = FakeDetector([small, big])
    prn.all_faces = False
    faces = prn.process(photo)
    assert [f.box for f in faces] == [big]
    prn.all_faces = True
    faces = prn.process(photo)
    assert [f.box for f in faces] == [big, small]
    prn._detector = FakeDetector([])
    with pytest.raises(api.NoFaceError):
        prn.process(photo)
    # boxes and points win over the detector
    assert prn.process(photo, bbox=big.bbox)[0].box is None
    prn.all_faces = False


def test_bad_regions_and_batches(prn: api.PRN, photo: np.ndarray) -> None:
    with pytest.raises(FaceRegionError, match="entirely outside"):
        prn.process(photo, bbox=(500, 600, 10, 100))
    with pytest.raises(FaceRegionError, match="degenerate"):
        prn.process(photo, bbox=(100, 100.5, 100, 100.5))
    pts = np.full((68, 2), np.nan)
    with pytest.raises(FaceRegionError, match="finite"):
        prn.process(photo, points=pts)
    prn._detector = FakeDetector([FaceBox(150, 300, 60, 220, 1.0)])
    results = prn.process_batch([photo, np.zeros((50, 50, 3), np.uint8), Path("/nonexistent.jpg")])
    assert isinstance(results[0], list) and len(results[0]) == 1
    assert isinstance(results[1], FaceRegionError)  # that box lies outside a 50x50 image
    assert "nonexistent.jpg" in str(results[2])


def test_release_weights_need_prnets_uv_data(tmp_path: Path, embedded_model) -> None:
    from model.release import import_weights_file
    from uvgen.formats.bfm import save_bfm
    from uvgen.formats.errors import DataError

    import_weights_file(GOLDEN / "model", tmp_path / "release.pt")
    save_bfm(embedded_model, tmp_path / "face_model")
    with pytest.raises(
        DataError, match="release.pt: weights imported from PRNet's release need PRNet's UV"
    ):
        api.PRN(tmp_path / "release.pt", model_dir=tmp_path / "face_model")


def test_process_twice_on_the_same_arrays(prn: api.PRN, photo: np.ndarray) -> None:
    """The image and the points are left as they are; a second call gives the same faces."""
    image, pts = photo.copy(), np.random.default_rng(2).uniform(120, 260, (68, 2))
    kept = pts.copy()
    runs = []
    for _ in range(2):
        face = prn.process(image, points=pts)[0]
        runs.append((face.posmap, face.landmarks, face.texture(visible_only=True)))
    np.testing.assert_array_equal(image, photo)
    np.testing.assert_array_equal(pts, kept)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_large_photo_is_shrunk_as_prnets_demo_and_mapped_back(prn: api.PRN, photo) -> None:
    """Issue 23 item 10: a photo over 1000 px is detected and cropped at a longer side of 1000
    (demo.py), and its faces are in the original pixels."""
    big = np.repeat(np.repeat(photo, 20, axis=0), 20, axis=1)  # 6000 x 8000
    small, s = api.shrink_to_max_side(big)
    assert small.shape == (750, 1000, 3)
    seen = []
    box_small = FaceBox(150, 300, 60, 220, 0.5)

    class Recorder(FakeDetector):
        def __call__(self, image):
            seen.append(image.shape)
            return super().__call__(image)

    prn._detector = Recorder([box_small])
    face = prn.process(big)[0]
    assert seen == [(750, 1000, 3)]
    np.testing.assert_allclose(face.box.bbox, [1203.5, 2403.5, 483.5, 1763.5])
    ref = prn.process(small, bbox=box_small.bbox)[0].posmap.astype(np.float64)
    inv = np.linalg.inv(s)
    want = np.concatenate([ref[..., :2] @ inv[:2, :2].T + inv[:2, 2], ref[..., 2:] * 8], -1)
    np.testing.assert_allclose(face.posmap, want, rtol=1e-5, atol=1e-2)
    by_box = prn.process(big, bbox=face.box.bbox)[0]
    np.testing.assert_allclose(by_box.posmap, face.posmap, rtol=1e-5, atol=1e-2)
    assert face.image is big


MEMORY_CHECK = """
import resource, sys
import numpy as np
from model import api
prn = api.PRN.from_tf_checkpoint(sys.argv[1], uv_data=sys.argv[2], device="cpu")
big = np.full((8000, 8000, 3), 128, np.uint8)
big[3000:5000, 3000:5000] = 200
prn.process(big[:100, :100], bbox=(10, 90, 10, 90))  # warm up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
prn.process(big, bbox=(3000, 5000, 3000, 5000))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_large_photo_memory_is_bounded(prnet_uv_dir: Path) -> None:
    """An 8000 x 8000 photo (192 MB) costs at most its own size again while processed."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHECK, str(GOLDEN / "model"), str(prnet_uv_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout.split()[-1]) <= 8000 * 8000 * 3
