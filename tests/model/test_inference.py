"""Inference: crop boxes, decoding a known map back to the original image, BN folding, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from model.checkpoint import save_weights
from model.data import write_toy_file
from model.inference import (
    Predictor,
    box_from_bbox,
    box_from_points,
    fold_batchnorm,
    landmarks_from_map,
    map_to_image,
    vertices_from_map,
)
from model.prnet import MAP_SCALE, PRNet
from uvgen.crop import warp_to_crop
from uvgen.geometry import crop_transform

S = 256


def _layout(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """68 distinct key-point UV pixels (row 0 = column, row 1 = row) and face indices."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(S * S, size=68, replace=False)
    kpt_uv = np.stack([flat % S, flat // S]).astype(np.int64)
    face = np.zeros((S, S), bool)
    face[40:220, 30:230] = True
    return kpt_uv, np.flatnonzero(face)


def _face_points(seed: int = 0) -> np.ndarray:
    """68 points (x, y, z) of a face of about 150 px in a 450 x 450 image."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([150, 160], [300, 320], size=(68, 2))
    return np.concatenate([xy, rng.uniform(0, 80, size=(68, 1))], axis=1)


def _known_map(
    points: np.ndarray, transform: np.ndarray, kpt_uv: np.ndarray, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A map in original pixels (random elsewhere, the points at the key pixels) and the same map in
    crop pixels, converted the way the ground truth is made: (x, y) -> T (x, y), z ->
    z * T[0, 0]."""
    rng = np.random.default_rng(seed)
    orig = np.concatenate([rng.uniform(100, 350, (S, S, 2)), rng.uniform(0, 90, (S, S, 1))], axis=2)
    orig[kpt_uv[1], kpt_uv[0]] = points
    crop = np.empty_like(orig)
    crop[..., :2] = orig[..., :2] @ transform[:2, :2].T + transform[:2, 2]
    crop[..., 2] = orig[..., 2] * transform[0, 0]
    return orig, crop


def test_box_from_bbox_is_prnets_rule() -> None:
    box = box_from_bbox(100, 200, 50, 170)  # width 100, height 120 -> old_size 110
    assert box.old_size == pytest.approx(110)
    assert box.center == pytest.approx((150, 110 + 0.14 * 110))
    assert box.size == int(110 * 1.58) == 173


def test_box_from_points_is_the_evaluation_crop() -> None:
    pts = np.array([[10.5, 20.0], [110.5, 20.0], [10.5, 140.0], [60.0, 80.0]])
    box = box_from_points(np.repeat(pts, 17, axis=0))
    assert box.center == pytest.approx((60.5, 80.0))
    assert box.old_size == pytest.approx(110) and box.size == int(1.6 * 110)


def test_decode_known_map_gives_back_landmarks_and_vertices() -> None:
    kpt_uv, face_ind = _layout()
    points = _face_points()
    t = crop_transform(box_from_points(points), S)
    orig, crop_map = _known_map(points, t, kpt_uv)
    back = map_to_image(crop_map, t)
    np.testing.assert_allclose(back, orig, atol=2e-3)  # float32 output, pixels
    np.testing.assert_allclose(landmarks_from_map(back, kpt_uv), points, atol=2e-3)
    np.testing.assert_allclose(
        vertices_from_map(back, face_ind), orig.reshape(-1, 3)[face_ind], atol=2e-3
    )
    # batch of maps with one transform broadcasts the same way
    np.testing.assert_allclose(map_to_image(np.stack([crop_map, crop_map]), t)[1], back, atol=1e-6)


class _FixedMapNet(nn.Module):
    """Stands in for the network: returns a fixed map (network scale) and records its input."""

    def __init__(self, map_crop: np.ndarray):
        super().__init__()
        self.in_size = S
        self.register_buffer(
            "out", torch.from_numpy(map_crop / MAP_SCALE).float().permute(2, 0, 1)[None]
        )
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return self.out.expand(len(x), -1, -1, -1)


def test_predictor_end_to_end_with_a_ground_truth_map() -> None:
    kpt_uv, face_ind = _layout()
    points = _face_points()
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(450, 450, 3), dtype=np.uint8)
    t = crop_transform(box_from_points(points), S)
    orig, crop_map = _known_map(points, t, kpt_uv)
    pred = Predictor(_FixedMapNet(crop_map), kpt_uv, face_ind, device="cpu", fold=False)
    out = pred.predict_one(image, points=points[:, :2])
    np.testing.assert_allclose(out.transform, t)
    np.testing.assert_array_equal(out.crop, warp_to_crop(image, t, S))
    seen = pred.net.seen[-1][0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(seen, out.crop / 255.0, atol=1e-7)  # RGB in [0, 1], channels first
    np.testing.assert_allclose(out.landmarks, points, atol=5e-3)
    np.testing.assert_allclose(out.vertices, orig.reshape(-1, 3)[face_ind], atol=5e-3)
    assert out.posmap.shape == (S, S, 3) and out.vertices.shape == (len(face_ind), 3)
    # a detector box: PRNet's box rule, and the same map decodes through that crop's transform
    bbox = (140.0, 310.0, 150.0, 330.0)
    out_box = pred.predict_one(image, bbox=bbox)
    np.testing.assert_allclose(out_box.transform, crop_transform(box_from_bbox(*bbox), S))
    np.testing.assert_allclose(out_box.posmap, map_to_image(crop_map, out_box.transform), atol=1e-3)
    with pytest.raises(ValueError):
        pred.predict_one(image)
    with pytest.raises(ValueError):
        pred.predict_one(image, bbox=bbox, points=points)


def test_predictor_with_real_uv_layout(prnet_uv_dir: Path) -> None:
    kpt_uv = np.loadtxt(prnet_uv_dir / "uv_kpt_ind.txt").astype(np.int64)
    face_ind = np.loadtxt(prnet_uv_dir / "face_ind.txt").astype(np.int64)
    points = _face_points(2)
    t = crop_transform(box_from_points(points), S)
    _, crop_map = _known_map(points, t, kpt_uv)
    pred = Predictor(_FixedMapNet(crop_map), kpt_uv, face_ind, device="cpu", fold=False)
    out = pred.predict_one(np.zeros((450, 450, 3), np.uint8), points=points)
    np.testing.assert_allclose(out.landmarks, points, atol=5e-3)
    assert out.vertices.shape == (43_867, 3)


def test_fold_batchnorm_matches_eval_model() -> None:
    torch.manual_seed(0)
    model = PRNet(width=2, in_size=64)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    model.eval()
    folded = fold_batchnorm(model)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert n_bn == 10  # only the batch norms after the residual sums remain
    assert model.training is False and next(model.parameters()).requires_grad  # original untouched


def test_batched_prediction_equals_one_by_one(tmp_path: Path) -> None:
    h5 = write_toy_file(tmp_path / "toy.h5", n=2, size=64)
    torch.manual_seed(0)
    save_weights(tmp_path / "model.pt", PRNet(width=2, in_size=64))
    pred = Predictor.from_files(tmp_path / "model.pt", h5, device="cpu", batch_size=2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (120, 100, 3), dtype=np.uint8) for _ in range(3)]
    boxes = [(20, 80, 30, 100), (10, 90, 10, 110), (30, 60, 40, 90)]
    batch = pred.predict(images, bboxes=boxes)
    assert len(batch) == 3 and batch[0].landmarks.shape == (68, 3)
    for img, box, b in zip(images, boxes, batch):
        one = pred.predict_one(img, bbox=box)
        np.testing.assert_allclose(one.posmap, b.posmap, rtol=1e-5, atol=1e-3)
    maps = pred.predict_maps(np.stack([b.crop for b in batch]))
    assert maps.shape == (3, 64, 64, 3) and maps.min() >= 0 and maps.max() <= MAP_SCALE
    with pytest.raises(ValueError):
        pred.predict_maps(np.zeros((1, 32, 32, 3), np.uint8))


def test_public_functions_leave_their_inputs_unchanged(tmp_path: Path) -> None:
    """Each public function called twice on the same arrays: same result, inputs untouched (a
    float32 batch was divided by 255 in place by ``predict_maps``)."""
    h5 = write_toy_file(tmp_path / "toy.h5", n=2, size=64)
    torch.manual_seed(0)
    save_weights(tmp_path / "model.pt", PRNet(width=2, in_size=64))
    pred = Predictor.from_files(tmp_path / "model.pt", h5, device="cpu", exact_crop=True)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)
    points = rng.uniform(20, 90, (68, 2))
    crops_f = rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    crops_t = torch.from_numpy(crops_f.copy())
    kept = [image.copy(), points.copy(), crops_f.copy(), crops_t.clone()]
    runs = []
    for _ in range(2):
        maps = pred.predict_maps(crops_f)
        maps_t = pred.predict_maps_tensor(crops_t)
        one = pred.predict_one(image, points=points)
        many = pred.predict([image], bboxes=[(20, 80, 30, 100)])
        back = map_to_image(maps[0], one.transform)
        lms = landmarks_from_map(back, pred.kpt_uv)
        verts = vertices_from_map(back, pred.face_ind)
        dec = pred.decode(maps[0], one.transform, one.crop)
        runs.append(
            [maps, maps_t.clone(), one.posmap, many[0].posmap, back, lms, verts, dec.posmap]
        )
    np.testing.assert_array_equal(image, kept[0])
    np.testing.assert_array_equal(points, kept[1])
    np.testing.assert_array_equal(crops_f, kept[2])
    torch.testing.assert_close(crops_t, kept[3], rtol=0, atol=0)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
