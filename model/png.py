"""A fast PNG encoder for the images ``prnet predict`` writes (textures, depth maps, previews).

``encode_png(array)`` takes (H, W) grayscale or (H, W, 3) RGB / (H, W, 4) RGBA, uint8 or uint16
(16-bit stored big-endian, as PNG requires), row 0 at the top. Every row uses PNG's "Up" filter
(the byte-wise difference from the row above; one numpy subtraction for the whole image) and the
data is deflated by zlib at level 1 with the run-length strategy. Against Pillow at its fastest
useful setting (``compress_level=1``, which tries the five filters on every row), this is about
twice as fast for a 450 x 450 photo, with files of about the same size (smaller for depth maps,
which are mostly runs). ``compress=False`` skips the deflate work (for quick-look images such as
the landmark preview). Any PNG reader decodes it; the same array always gives the same bytes.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

#: PNG colour types by channel count: grey, RGB, RGBA.
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG filter type 2, "Up": each byte minus the byte above it (row 0: minus 0).
_FILTER_UP = 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(array: np.ndarray, compress: bool = True) -> bytes:
    """The PNG file bytes of ``array`` (H, W) or (H, W, C), C in 1, 3, 4; uint8 or uint16.
    ``compress`` False stores the filtered rows uncompressed (deflate level 0): 15-20x faster to
    write, about 1.7x the size for a photo."""
    a = np.asarray(array)
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"a PNG holds uint8 or uint16 pixels, got {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in _COLOR_TYPES or 0 in a.shape:
        raise ValueError(f"a PNG image is (H, W) or (H, W, 1|3|4) and not empty, got {a.shape}")
    h, w, c = a.shape
    rows = a.astype(">u2" if a.dtype == np.uint16 else np.uint8, copy=False)
    rows = np.ascontiguousarray(rows).view(np.uint8).reshape(h, -1)
    scan = np.empty((h, rows.shape[1] + 1), dtype=np.uint8)
    scan[:, 0] = _FILTER_UP
    scan[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=scan[1:, 1:])  # uint8 wraps modulo 256, as PNG's
    deflate = zlib.compressobj(1 if compress else 0, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = deflate.compress(scan) + deflate.flush()
    bit_depth = 16 if a.dtype == np.uint16 else 8
    header = struct.pack(">IIBBBBB", w, h, bit_depth, _COLOR_TYPES[c], 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
