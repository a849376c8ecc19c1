"""The bilinear crop warp against a plain per-pixel implementation of skimage's rule."""

import numpy as np
import pytest

from uvgen.crop import crop_sample_points, sample_bilinear, warp_float, warp_to_crop
from uvgen.geometry import CropBox, crop_transform


def reference_warp(image, transform, out_size):
    inv = np.linalg.inv(transform)
    h, w, c = image.shape
    img = image.astype(np.float64) / 255.0
    out = np.zeros((out_size, out_size, c))

    def pixel(r, col):
        if 0 <= r < h and 0 <= col < w:
            return img[r, col]
        return np.zeros(c)

    for y in range(out_size):
        for x in range(out_size):
            sx, sy = inv[0] @ [x, y, 1], inv[1] @ [x, y, 1]
            r0, c0 = int(np.floor(sy)), int(np.floor(sx))
            r1, c1 = int(np.ceil(sy)), int(np.ceil(sx))
            dr, dc = sy - r0, sx - c0
            top = (1 - dc) * pixel(r0, c0) + dc * pixel(r0, c1)
            bottom = (1 - dc) * pixel(r1, c0) + dc * pixel(r1, c1)
            out[y, x] = (1 - dr) * top + dr * bottom
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def test_warp_matches_reference_including_outside_pixels():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    # A box reaching beyond the top-left corner: outside neighbours must read 0.
    t = crop_transform(CropBox(center=(12.3, 9.7), size=37.9, old_size=25.0), 24)
    ours = warp_to_crop(image, t, 24)
    ref = reference_warp(image, t, 24)
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    assert (ours == ref).mean() > 0.99
    assert ours[0, 0].max() < image.max()  # blended with the zero outside


def test_identity_transform_returns_image():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_to_crop(image, np.eye(3), 16), image)


def test_rotated_transform_uses_the_general_path_and_matches_reference():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(30, 30, 3), dtype=np.uint8)
    a, s = 0.3, 0.8
    t = np.array(
        [[s * np.cos(a), -s * np.sin(a), 4.0], [s * np.sin(a), s * np.cos(a), -2.0], [0, 0, 1]]
    )
    ours = warp_to_crop(image, t, 20)
    ref = reference_warp(image, t, 20)
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    assert (ours == ref).mean() > 0.99


def test_far_away_or_degenerate_crops_never_raise_index_errors():
    import pytest

    image = np.full((40, 40, 3), 200, np.uint8)
    # A box a billion pixels away reads only the zero outside (no integer overflow in the indices).
    far = crop_transform(CropBox(center=(1e9, -1e9), size=50.0, old_size=30.0), 16)
    assert not warp_to_crop(image, far, 16).any()
    with pytest.raises(ValueError, match="invertible"):
        warp_to_crop(image, np.diag([0.0, 0.0, 1.0]), 16)
    with pytest.raises(ValueError, match="empty or not finite"):
        crop_transform(CropBox(center=(10.0, 10.0), size=0.0, old_size=0.0), 16)


def test_warp_float_equals_the_pointwise_sampler_bit_for_bit():
    """The unrotated crop's row-then-column gather (sample_bilinear_grid) gives the same float32
    bits as sample_bilinear at crop_sample_points: boxes inside, across the edges, far outside,
    tiny and huge; a rotated transform takes the pointwise path."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(61, 47, 3), dtype=np.uint8)
    transforms = [
        crop_transform(
            CropBox(center=tuple(rng.uniform(-80, 140, 2)), size=rng.uniform(2, 300), old_size=1),
            33,
        )
        for _ in range(200)
    ]
    transforms.append(np.array([[0.8, 0.6, -3.0], [-0.6, 0.8, 20.0], [0, 0, 1]]))
    for t in transforms:
        pts = crop_sample_points(t, 33)
        ref = sample_bilinear(image, pts[..., 0], pts[..., 1])
        out = warp_float(image, t, 33)
        assert out.dtype == np.float32 and out.shape == (33, 33, 3)
        assert out.tobytes() == ref.tobytes()
    gray = rng.integers(0, 256, size=(20, 30), dtype=np.uint8)
    t = crop_transform(CropBox(center=(14.2, 9.9), size=17.3, old_size=1), 16)
    pts = crop_sample_points(t, 16)
    ref = sample_bilinear(gray[..., None], pts[..., 0], pts[..., 1])
    assert warp_float(gray, t, 16).tobytes() == ref.tobytes()


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_uint8_pixels_read_as_words_equal_the_float_path(channels):
    """uint8 images of up to four channels are gathered as one 4-byte word per pixel: the same
    float32 bits as the same values given as float32 (the plain per-pixel gather)."""
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, size=(37, 29, channels), dtype=np.uint8)
    x = rng.uniform(-4, 33, size=(17, 13))
    y = rng.uniform(-4, 41, size=(17, 13))
    words = sample_bilinear(image, x, y)
    plain = sample_bilinear(image.astype(np.float32), x, y)
    assert words.shape == (17, 13, channels) and words.dtype == np.float32
    assert words.tobytes() == plain.tobytes()


def _pointwise(image, x, y):
    """float64 (n, C) bilinear reads with 0 outside: the plain rule, one point at a time."""
    h, w, c = image.shape

    def pixel(r, col):
        return image[r, col].astype(np.float64) if 0 <= r < h and 0 <= col < w else np.zeros(c)

    out = []
    for sx, sy in zip(x, y):
        c0, r0 = int(np.floor(sx)), int(np.floor(sy))
        dx, dy = sx - c0, sy - r0
        top = (1 - dx) * pixel(r0, c0) + dx * pixel(r0, c0 + 1)
        bottom = (1 - dx) * pixel(r0 + 1, c0) + dx * pixel(r0 + 1, c0 + 1)
        out.append((1 - dy) * top + dy * bottom)
    return np.array(out).reshape(len(x), c)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(
    "region",
    [(10, 14, 20, 23), (-3, 2, -2, 1), (44, 49, 58, 63), (-40, -30, 5, 9), (0, 46, 0, 60)],
)
def test_sample_bilinear_reads_only_the_window_it_needs(dtype, region):
    """Samples in a small region (inside, across a corner, past the far edges, wholly outside,
    everywhere) read the image padded only where they fall: the values of the plain rule."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(61, 47, 3)).astype(dtype)
    x0, x1, y0, y1 = region
    x, y = rng.uniform(x0, x1, 300), rng.uniform(y0, y1, 300)
    x[:2], y[:2] = (x0, x1), (y0, y1)  # the region's corners on integers: whole-pixel reads
    out = sample_bilinear(image, x, y)
    assert out.shape == (300, 3) and out.dtype == np.float32 and out.flags.c_contiguous
    assert np.allclose(out, _pointwise(image, x, y), rtol=0, atol=1e-3)
    assert sample_bilinear(image, x[:0], y[:0]).shape == (0, 3)
