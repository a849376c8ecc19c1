"""model.png: the PNG encoder's files decode (by Pillow, an independent reader) to the array."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.png import encode_png


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((37, 53), np.uint8), ((37, 53, 3), np.uint8), ((20, 9, 4), np.uint8), ((31, 17), np.uint16)],
)
@pytest.mark.parametrize("compress", [True, False])
def test_pixels_round_trip(shape, dtype, compress):
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    image = rng.integers(0, top, shape, endpoint=True).astype(dtype)
    image[5:9] = image[4]  # equal rows: the Up filter's zeros
    image[0, 0], image[-1, -1] = 0, top  # both extremes (the byte differences wrap)
    decoded = _decode(encode_png(image, compress))
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, image)


def test_one_pixel_and_channel_axis():
    np.testing.assert_array_equal(_decode(encode_png(np.full((1, 1), 7, np.uint8))), [[7]])
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    np.testing.assert_array_equal(_decode(encode_png(grey)), grey[..., 0])


def test_same_array_same_bytes_and_views_equal_copies():
    image = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    flipped = image[::-1]  # not contiguous
    assert encode_png(flipped) == encode_png(flipped.copy()) == encode_png(flipped)
    assert encode_png(image) != encode_png(flipped)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4), np.float32), "uint8 or uint16"),
        (np.zeros((4, 4, 2), np.uint8), r"\(H, W, 1\|3\|4\)"),
        (np.zeros((0, 4), np.uint8), "not empty"),
        (np.zeros(4, np.uint8), r"\(H, W\)"),
    ],
)
def test_refuses_what_png_cannot_hold(array, message):
    with pytest.raises(ValueError, match=message):
        encode_png(array)


def test_uncompressed_is_larger_but_the_same_pixels():
    photo = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8) // 16 * 16
    packed, stored = encode_png(photo), encode_png(photo, compress=False)
    assert len(packed) < len(stored) and len(stored) > photo.size
    np.testing.assert_array_equal(_decode(stored), _decode(packed))
