"""float16 encoding of a position map in whole-array float32 operations, bit for bit the bytes of
:func:`uvgen.h5codec.encode_posmap_into` (the reference). Kept because it matters: it saves 0.66 ms
of a 5 ms batched sample (13 %; ``python benchmarks/bench_posmap_float16.py``: 1.20 vs 0.54 ms).

The stored value of a map value x (crop pixels, float32) is ``d = x - 128`` computed exactly and
rounded once to float16, to nearest with ties to even. numpy converts to float16 one element at a
time (~0.3 ms for a 256x256x3 map on the development machine); :func:`encode_posmap_fast` gets
the same bits from about a dozen float32/int32 array operations (~0.14 ms).

Method, for the elements with ``2**-14 <= |d| < 256`` (float16 normal numbers):

1. ``f = float32(x - 128)`` (one rounding) has binary exponent E: ``2**E <= |f| < 2**(E+1)``. So
   ``|d| < 2**(E+1)``, and ``|d| >= 2**E`` unless d lies just below 2**E, within float32 rounding
   of it (float16 rounds such a d to 2**E too).
2. ``m = 1.5 * 2**(E+13)``: the float32 numbers within 2**(E+1) of m are spaced 2**(E-10), float16's
   spacing in binade E, and m's significand is even.
3. ``c = m - 128`` is exact in float32 (for -14 <= E <= 7), so ``s = float32(x + c)`` is the exact
   ``d + m`` rounded once to that spacing, ties to even: the last bit of s's significand is the
   parity of float16's.
4. ``r = s - m`` is exact and equals float16(d). Its float32 bits are float16's: the exponent
   rebiased by 112 (127 - 15), the top 10 of the 23 mantissa bits, the sign.

Elements with ``|f| < 2**-14`` (x within 2**-14 of 128: float16 zeros and subnormals) are rare and
go through numpy's conversion. Whole maps outside the fast path go through the reference: float32
storage, another offset, input that is not a C-contiguous float32 array, a value with
``|f| >= 256`` (x outside (-128, 384) or at its edge: the reference counts and warns about the
values outside) and non-finite values (ValueError, as there).
"""

from __future__ import annotations

import numpy as np

from uvgen.h5codec import StorageOptions, encode_posmap_into

_OFFSET = 128.0  # the method below is written for this offset (c = m - 128 exact)
# |f| < 256 (E <= 7) keeps |d| < 256: c = m - 128 exact, and no value the reference counts as
# coarser than 1/8 px (FLOAT16_SAFE_HALF_RANGE is 256).
_LIMIT = np.int32((127 + 8) << 23)  # float32 exponent field of 256
_EXPONENT = np.int32(0x7F800000)  # float32 exponent field
_MIN_NORMAL = np.int32(113 << 23)  # float32 exponent field of 2**-14, float16's smallest normal
_MAGIC = np.int32((13 << 23) | (1 << 22))  # exponent field of 2**E -> bits of 1.5 * 2**(E+13)
_REBIAS = np.uint16((112 << 10) % (1 << 16))  # exponent bias 127 -> 15, modulo 2**16
_SIGN = np.uint16(0x8000)


def encode_posmap_fast(
    posmap: np.ndarray, storage: StorageOptions, out: np.ndarray, scratch: np.ndarray | None = None
) -> int:
    """:func:`uvgen.h5codec.encode_posmap_into` with the same arguments, result and bytes in
    ``out``: the count of values stored coarser than 1/8 px; ValueError for non-finite values.

    ``scratch``: float64, the map's shape (two float32 work arrays), or None to allocate."""
    fast = (
        storage.posmap_dtype == "float16"
        and storage.posmap_offset == _OFFSET
        and posmap.dtype == np.float32
        and posmap.flags.c_contiguous
        and out.dtype == np.float16
        and out.shape == posmap.shape
        and out.flags.c_contiguous
    )
    if not fast:
        return encode_posmap_into(posmap, storage, out, scratch)
    x = posmap.reshape(-1)
    n = x.size
    if scratch is None or scratch.dtype != np.float64 or scratch.shape != posmap.shape:
        scratch = np.empty(posmap.shape, np.float64)
    work = scratch.reshape(-1).view(np.float32)
    a, b = work[:n], work[n:]
    a_bits, b_bits = a.view(np.int32), b.view(np.int32)
    half = out.reshape(-1).view(np.uint16)

    np.subtract(x, np.float32(_OFFSET), out=a)  # f = float32(d)
    np.bitwise_and(a_bits, _EXPONENT, out=a_bits)  # 2**E as bits
    if a_bits.max() >= _LIMIT:
        # Some |f| >= 256, inf or NaN: the reference counts, warns or raises (nothing written yet).
        return encode_posmap_into(posmap, storage, out, scratch)
    small = np.flatnonzero(a_bits < _MIN_NORMAL) if a_bits.min() < _MIN_NORMAL else None
    np.add(a_bits, _MAGIC, out=a_bits)  # m = 1.5 * 2**(E+13)
    np.subtract(a, np.float32(_OFFSET), out=b)  # c = m - 128, exact
    np.add(x, b, out=b)  # s = float32(d + m): the one rounding
    np.subtract(b, a, out=b)  # r = s - m = float16(d), exact
    negative = np.signbit(b)
    np.right_shift(b_bits, 13, out=b_bits)  # exponent and top 10 mantissa bits (sign: see below)
    np.copyto(half, b_bits, casting="unsafe")  # low 16 bits: the sign's copies above bit 15 drop
    np.subtract(half, _REBIAS, out=half)
    sign = a_bits.view(np.uint16)[:n]
    np.multiply(negative, _SIGN, out=sign)
    np.bitwise_or(half, sign, out=half)
    if small is not None:
        # Zeros and subnormals: numpy's conversion of the exact difference, as the reference.
        half[small] = (x[small].astype(np.float64) - _OFFSET).astype(np.float16).view(np.uint16)
    return 0
