"""CRC32C: known values, the library against the plain bitwise loop, continuation, masking."""

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


@pytest.mark.parametrize("n", [1, 4095, 4096, 9000])
def test_equals_the_plain_crc_and_continues_across_a_split(n: int) -> None:
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    got = C.crc32c(data)
    assert got == _plain(data.tobytes())
    cut = n // 3
    assert C.crc32c(data[cut:], C.crc32c(data[:cut])) == got
    assert C.crc32c(data.tobytes()) == got
    assert C.crc32c(data.view(np.int8)) == got  # any dtype: its bytes


def test_mask_round_trip_and_value() -> None:
    for v in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert C.unmask(C.mask(v)) == v
    assert C.mask(0) == 0xA282EAD8
    assert C.masked_crc32c(b"123456789") == C.mask(0xE3069283)
