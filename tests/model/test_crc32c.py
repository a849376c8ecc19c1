"""CRC32C: known values, the lane-parallel path against the plain loop, masking."""

from __future__ import annotations

import numpy as np
import pytest

from model import crc32c as C


def _plain(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:  # bit by bit, straight from the polynomial
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ C.POLY if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_known_values() -> None:
    assert C.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert C.crc32c(b"") == 0
    assert C.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert C.crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of 0xFF


@pytest.mark.parametrize("n", [4095, 4096, 4097, 9000, 65536 + 7, 300_001])
def test_lane_parallel_path_equals_the_plain_crc(n: int) -> None:
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    expected = _plain(data[:5000].tobytes()) if n <= 5000 else None
    got = C.crc32c(data)
    if expected is not None:
        assert got == expected
    # continuing across a split gives the same value as one pass (combine operator + lanes)
    cut = n // 3
    assert C.crc32c(data[cut:], C.crc32c(data[:cut])) == got
    assert C.crc32c(data.tobytes()) == got
    assert C._raw_small(data.tobytes(), 0xFFFFFFFF) ^ 0xFFFFFFFF == got


def test_mask_round_trip_and_value() -> None:
    for v in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert C.unmask(C.mask(v)) == v
    assert C.mask(0) == 0xA282EAD8
    assert C.masked_crc32c(b"123456789") == C.mask(0xE3069283)
