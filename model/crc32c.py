"""CRC32C (Castagnoli) in numpy, fast enough for whole checkpoints, and TensorFlow's masking.

CRC32C is the reflected CRC with polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF
(``crc32c(b"123456789") == 0xE3069283``). TensorFlow (like LevelDB) stores CRCs *masked*:
``mask(c) = (((c >> 15) | (c << 17)) + 0xA282EAD8) mod 2**32``.

Speed: the table update (two bytes per lookup here) is inherently serial, so a long buffer is cut
into P equal sub-streams (lanes) of L bytes (zeros padded in front, which leave a zero CRC state
unchanged) and the L update steps run over all P lanes at once in numpy. The lane CRCs are then
merged pairwise with the CRC *combine* operator ``raw(a || b) = shift(raw(a), len(b)) ^ raw(b)``,
where ``shift`` (appending len(b) zero bytes) is a linear map over GF(2): a 32x32 bit matrix,
applied to many values through four 256-entry byte tables. 53 MB (the release's weights) take
about 0.5 s on the shared 2-core development machine (``python benchmarks/bench_import.py``).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

POLY = 0x82F63B78
MASK_DELTA = 0xA282EAD8
_SMALL = 4096  # below this many bytes the plain loop is used


def _make_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(POLY), table >> 1).astype(np.uint32)
    return table


TABLE = _make_table()
_TABLE_LIST = [int(v) for v in TABLE]


def _make_table16() -> np.ndarray:
    """T16[w]: the raw register w (16 bits) after 16 bit-steps; two bytes per lookup."""
    t = np.arange(1 << 16, dtype=np.uint32)
    return (TABLE[t & 0xFF] >> 8 ^ TABLE[(TABLE[t & 0xFF] ^ (t >> 8)) & 0xFF]).astype(np.uint32)


TABLE16 = _make_table16()


def mask(crc: int) -> int:
    """TensorFlow's masked CRC of an unmasked CRC32C value."""
    crc &= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """Inverse of :func:`mask`."""
    rot = (masked - MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ---- GF(2) matrices of "append n zero bytes" (32 column images, column j = M(1 << j)) -----------


def _apply(cols: tuple[int, ...], x: int) -> int:
    out, j = 0, 0
    while x:
        if x & 1:
            out ^= cols[j]
        x >>= 1
        j += 1
    return out


@cache
def _zeros_matrix(log2_bytes: int) -> tuple[int, ...]:
    """Columns of the map "append 2**log2_bytes zero bytes" on the raw CRC register."""
    if log2_bytes == 0:
        cols = []
        for j in range(32):
            x = 1 << j
            for _ in range(8):
                x = (x >> 1) ^ POLY if x & 1 else x >> 1
            cols.append(x)
        return tuple(cols)
    half = _zeros_matrix(log2_bytes - 1)
    return tuple(_apply(half, c) for c in half)


def _shift(crc: int, nbytes: int) -> int:
    """The raw register ``crc`` after ``nbytes`` zero bytes."""
    k = 0
    while nbytes:
        if nbytes & 1:
            crc = _apply(_zeros_matrix(k), crc)
        nbytes >>= 1
        k += 1
    return crc


@cache
def _byte_tables(log2_bytes: int) -> np.ndarray:
    """(4, 256) uint32: the zero-append map of 2**log2_bytes bytes, one table per input byte."""
    cols = np.array(_zeros_matrix(log2_bytes), dtype=np.uint32)
    values = np.arange(256, dtype=np.uint32)
    out = np.zeros((4, 256), dtype=np.uint32)
    for b in range(4):
        for bit in range(8):
            out[b] ^= np.where((values >> bit) & 1, cols[8 * b + bit], np.uint32(0)).astype(
                np.uint32
            )
    return out


def _shift_many(crcs: np.ndarray, log2_bytes: int) -> np.ndarray:
    t = _byte_tables(log2_bytes)
    return (
        t[0][crcs & 0xFF] ^ t[1][(crcs >> 8) & 0xFF] ^ t[2][(crcs >> 16) & 0xFF] ^ t[3][crcs >> 24]
    )


def _raw_small(data: bytes | memoryview, crc: int) -> int:
    table = _TABLE_LIST
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _raw_zero_state(buf: np.ndarray) -> int:
    """The raw register after ``buf`` (uint8) from a zero register, lane-parallel."""
    n = buf.size
    lane_log = max(6, math.ceil(math.log2(n) / 2))  # L ~ sqrt(n), at least 64
    lanes_log = max(0, math.ceil(math.log2(-(-n // (1 << lane_log)))))
    lane, lanes = 1 << lane_log, 1 << lanes_log
    padded = np.zeros(lane * lanes, dtype=np.uint8)
    padded[padded.size - n :] = buf  # leading zeros: a zero register stays zero
    # (L/2, P): row i = bytes 2i, 2i+1 of every lane as one little-endian uint16
    steps = padded.reshape(lanes, lane).view("<u2").T.astype(np.uint32)
    crc = np.zeros(lanes, dtype=np.uint32)
    table = TABLE16
    for row in steps:
        crc = table[(crc ^ row) & 0xFFFF] ^ (crc >> 16)
    level = lane_log
    while crc.size > 1:  # merge neighbours: raw(a || b) = shift(raw(a), len(b)) ^ raw(b)
        crc = _shift_many(crc[0::2], level) ^ crc[1::2]
        level += 1
    return int(crc[0])


def crc32c(data: bytes | bytearray | memoryview | np.ndarray, value: int = 0) -> int:
    """CRC32C of ``data``, continuing from a previous ``value`` (0 to start)."""
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        buf = np.frombuffer(data, dtype=np.uint8)
    start = (value ^ 0xFFFFFFFF) & 0xFFFFFFFF
    if buf.size < _SMALL:
        return _raw_small(buf.tobytes(), start) ^ 0xFFFFFFFF
    return (_shift(start, buf.size) ^ _raw_zero_state(buf)) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """``mask(crc32c(data))``: what TensorFlow stores."""
    return mask(crc32c(data))
