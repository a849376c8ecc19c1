"""On-device augmentation: image and position map move together, colour scale, occlusion,
seeding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model.augment import (
    AugmentConfig,
    apply_affine,
    augment_batch,
    color_scale,
    invert_affine,
    make_affine,
    occlude,
    random_affine,
    random_color_factors,
    transform_maps,
    warp_images,
)

SIZE = 256
KPT_FILE = (
    Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "prnet_uv" / "uv_kpt_ind.txt"
)


def _uv_kpt() -> tuple[np.ndarray, np.ndarray]:
    """(ku, kv) of the 68 key points: PRNet's file when present, else 68 fixed distinct pixels."""
    if KPT_FILE.is_file():
        ku, kv = np.loadtxt(KPT_FILE).astype(np.int64)
        return ku, kv
    idx = np.arange(68)
    return 20 + (idx % 17) * 12, 40 + (idx // 17) * 40


def _landmarks() -> np.ndarray:
    """68 integer landmark pixels (x, y) on a 16-px grid around the crop centre, z = 0..67."""
    idx = np.arange(68)
    x = 64 + (idx % 9) * 16
    y = 72 + (idx // 9) * 16
    return np.stack([x, y, idx * 1.0], axis=1).astype(np.float64)


def _synthetic_pair(batch: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    lm = _landmarks()
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    for x, y, _ in lm.astype(int):
        img[y - 1 : y + 2, x - 1 : x + 2] = 128  # 3x3 dot centred on the landmark pixel
    rng = np.random.default_rng(0)
    pmap = rng.uniform(0, 255, (SIZE, SIZE, 3))
    ku, kv = _uv_kpt()
    pmap[kv, ku] = lm
    images = torch.from_numpy(np.repeat(img[None], batch, 0))
    maps = torch.from_numpy(np.repeat(pmap[None], batch, 0)).float()
    return images, maps, lm


def _dot_centroid(gray: np.ndarray, q: np.ndarray, radius: int = 4) -> np.ndarray:
    cx, cy = int(round(q[0])), int(round(q[1]))
    win = gray[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1]
    ys, xs = np.mgrid[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1]
    return np.array([(win * xs).sum(), (win * ys).sum()]) / win.sum()


def test_map_and_image_follow_the_same_transform() -> None:
    batch = 6
    images, maps, lm = _synthetic_pair(batch)
    cfg = AugmentConfig(occlusion_prob=0.0)
    g = torch.Generator().manual_seed(123)
    out_img, out_map, A = augment_batch(images, maps, g, cfg, return_affine=True)
    assert out_img.shape == (batch, 3, SIZE, SIZE) and out_map.shape == (batch, 3, SIZE, SIZE)
    ku, kv = _uv_kpt()
    A_np = A.numpy()
    checked = 0
    for b in range(batch):
        decoded = out_map[b, :, kv, ku].T.double().numpy()  # (68, 3) = P[kv, ku]
        lin, t = A_np[b, :, :2], A_np[b, :, 2]
        expected_xy = lm[:, :2] @ lin.T + t
        scale = math.sqrt(abs(np.linalg.det(lin)))
        np.testing.assert_allclose(decoded[:, :2], expected_xy, atol=2e-4)
        np.testing.assert_allclose(decoded[:, 2], lm[:, 2] * scale, atol=1e-4)
        gray = out_img[b].mean(0).numpy()
        for q in decoded[:, :2]:
            if q.min() < 6 or q.max() > SIZE - 7:
                continue  # the dot left the crop
            assert np.linalg.norm(_dot_centroid(gray, q) - q) < 1.5
            checked += 1
    assert checked > 0.8 * 68 * batch
    assert not np.allclose(A_np[:, :, :2], np.eye(2))  # something actually moved


def test_random_affine_ranges() -> None:
    cfg = AugmentConfig()
    A = random_affine(4000, torch.Generator().manual_seed(0), cfg)
    assert A.shape == (4000, 2, 3) and A.dtype == torch.float64
    lin = A[:, :, :2]
    scale = torch.sqrt(torch.linalg.det(lin))
    angle = torch.rad2deg(torch.atan2(lin[:, 1, 0], lin[:, 0, 0]))
    assert scale.min() >= 0.9 - 1e-9 and scale.max() <= 1.2 + 1e-9
    assert angle.min() >= -45 - 1e-9 and angle.max() <= 45 + 1e-9
    assert angle.min() < -40 and angle.max() > 40
    torch.testing.assert_close(lin[:, 0, 0], lin[:, 1, 1])  # rotation + uniform scale
    torch.testing.assert_close(lin[:, 0, 1], -lin[:, 1, 0])
    centre = torch.tensor([127.5, 127.5], dtype=torch.float64)
    shift = apply_affine(A, centre.expand(4000, 1, 2))[:, 0] - centre
    assert shift.abs().max() <= 25.6 + 1e-9 and shift.abs().max() > 24


def test_warp_identity_translation_and_rotation_exact() -> None:
    img = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    ident = make_affine(zero, torch.ones(1, dtype=torch.float64), torch.zeros(1, 2), (16, 16))
    torch.testing.assert_close(warp_images(img, ident), img)
    shift = make_affine(
        zero, torch.ones(1, dtype=torch.float64), torch.tensor([[3.0, -2.0]]), (16, 16)
    )
    out = warp_images(img, shift)
    torch.testing.assert_close(out[..., :14, 3:], img[..., 2:, :13])  # pixel (x, y) -> (x+3, y-2)
    assert (
        out[..., :, :3].abs().max() < 1e-9 and out[..., 14:, :].abs().max() < 1e-9
    )  # zeros outside
    quarter = make_affine(
        torch.tensor([math.pi / 2], dtype=torch.float64),
        torch.ones(1, dtype=torch.float64),
        torch.zeros(1, 2),
        (16, 16),
    )
    out = warp_images(img, quarter)
    # x' = c - (y - c), y' = x  (c = 7.5): out[x, 15 - y] = img[y, x]
    ys, xs = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    torch.testing.assert_close(out[..., xs, 15 - ys], img[..., ys, xs])


def test_invert_and_transform_maps() -> None:
    A = random_affine(3, torch.Generator().manual_seed(5), AugmentConfig())
    pts = torch.rand(3, 10, 2, dtype=torch.float64) * 255
    torch.testing.assert_close(apply_affine(invert_affine(A), apply_affine(A, pts)), pts)
    maps = torch.rand(3, 3, 4, 4, dtype=torch.float64) * 200
    out = transform_maps(maps, A)
    xy = maps[:, :2].flatten(2).transpose(1, 2)
    torch.testing.assert_close(out[:, :2].flatten(2).transpose(1, 2), apply_affine(A, xy))
    s = torch.sqrt(torch.linalg.det(A[:, :, :2]))
    torch.testing.assert_close(out[:, 2], maps[:, 2] * s[:, None, None])


def test_color_scale_range() -> None:
    g = torch.Generator().manual_seed(1)
    f = random_color_factors(5000, g, (0.6, 1.4))
    assert f.shape == (5000, 3)
    assert f.min() >= 0.6 and f.max() <= 1.4 and f.min() < 0.62 and f.max() > 1.38
    img = torch.rand(4, 3, 8, 8) * 0.7 + 0.01
    out = color_scale(img, f[:4])
    torch.testing.assert_close(out / img, f[:4, :, None, None].expand_as(img))
    assert color_scale(torch.ones(1, 3, 2, 2), torch.tensor([[1.4, 1.0, 0.6]])).max() == 1.0


def test_occlusion_rectangles() -> None:
    img = torch.full((64, 3, 32, 32), -1.0)  # impossible value: any change is occlusion
    out = occlude(img, torch.Generator().manual_seed(2), prob=0.5, size_range=(0.2, 0.4))
    changed = (out != img).any(1)  # (B, H, W)
    hit = changed.flatten(1).any(1)
    assert 10 < int(hit.sum()) < 54
    for m in changed[hit]:
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w
        assert int(m.sum()) == h * w  # a filled rectangle
        assert 0.2 * 32 - 1 <= h <= 0.4 * 32 + 1 and 0.2 * 32 - 1 <= w <= 0.4 * 32 + 1
    assert out[~img.eq(out)].min() >= 0 and out[~img.eq(out)].max() <= 1
    assert torch.equal(occlude(img, torch.Generator().manual_seed(2), prob=0.0), img)


def test_augment_batch_deterministic_and_in_range() -> None:
    images, maps, _ = _synthetic_pair(3)
    cfg = AugmentConfig(occlusion_prob=1.0)
    a = augment_batch(images, maps, torch.Generator().manual_seed(7), cfg)
    b = augment_batch(images, maps, torch.Generator().manual_seed(7), cfg)
    c = augment_batch(images, maps, torch.Generator().manual_seed(8), cfg)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    assert a[0].dtype == torch.float32 and a[0].min() >= 0 and a[0].max() <= 1
    assert a[1].dtype == torch.float32


def test_augment_batch_shape_errors() -> None:
    with pytest.raises(ValueError):
        augment_batch(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8), None)
    with pytest.raises(ValueError):
        augment_batch(torch.zeros(1, 8, 8, 3, dtype=torch.uint8), torch.zeros(1, 8, 9, 3), None)
