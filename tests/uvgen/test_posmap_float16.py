"""uvgen.posmap_float16: the vectorised float16 encoding stores the reference's bytes
(uvgen.h5codec.encode_posmap_into: numpy's rounding of the exact float64 difference)."""

from __future__ import annotations

import numpy as np
import pytest

from uvgen import posmap_float16
from uvgen.h5codec import (
    FLOAT16_SAFE_HALF_RANGE,
    PosmapPrecisionWarning,
    StorageOptions,
    encode_posmap_into,
)
from uvgen.posmap_float16 import encode_posmap_fast

F16 = StorageOptions(posmap_dtype="float16")


def _as_map(values: np.ndarray) -> np.ndarray:
    """float32 values as an (n, 3) map (padded with 100 px)."""
    values = np.asarray(values, dtype=np.float32).ravel()
    pad = (-len(values)) % 3
    return np.concatenate([values, np.full(pad, 100.0, np.float32)]).reshape(-1, 3)


def _both(posmap: np.ndarray, storage: StorageOptions = F16) -> tuple[bytes, int, bytes, int]:
    dtype = np.float16 if storage.posmap_dtype == "float16" else np.float32
    ref, fast = np.empty(posmap.shape, dtype), np.empty(posmap.shape, dtype)
    lossy_ref = encode_posmap_into(posmap, storage, ref)
    lossy_fast = encode_posmap_fast(posmap, storage, fast, np.empty(posmap.shape, np.float64))
    return ref.tobytes(), lossy_ref, fast.tobytes(), lossy_fast


def _in_range(values: np.ndarray) -> np.ndarray:
    """The float32 values x with ``|float32(x - 128)| < 256`` (the fast path's maps)."""
    values = np.asarray(values, dtype=np.float32).ravel()
    with np.errstate(invalid="ignore"):
        f = values - np.float32(128)
    return values[np.isfinite(f) & (np.abs(f) < 256)]


def _adversarial() -> np.ndarray:
    """Ties and near-ties of float16 rounding, values next to 128 (zeros and subnormals of the
    difference), values whose float32 difference with 128 is inexact, random bit patterns."""
    rng = np.random.default_rng(3)
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    halves = np.concatenate([halves, -halves])
    halves = halves[np.abs(halves) <= 256.0]
    halves.sort()
    ties = halves[:-1] + np.diff(halves) / 2  # midpoints between neighbouring float16 values
    parts = []
    for grid in (halves, ties):
        x = (grid + 128.0).astype(np.float32)
        for step in range(-3, 4):  # and their float32 neighbours
            parts.append((x.view(np.int32) + step).view(np.float32))
    ulps = np.arange(-3000, 3001, dtype=np.int32)
    parts.append((np.float32(128).view(np.int32) + ulps).view(np.float32))  # 128 +- 3000 ulps
    parts.append(rng.uniform(-1.0, 64.0, 200_000).astype(np.float32))  # inexact float32 x - 128
    parts.append(
        np.array([0.0, -0.0, 1e-40, -1e-40, 1e-30, -1e-30, 2**-14, 128 - 2**-14], np.float32)
    )
    bits = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    parts.append(bits.view(np.float32))
    return _in_range(np.concatenate(parts))


def test_same_bytes_as_the_reference_on_ties_near_128_and_random_bits(monkeypatch):
    values = _adversarial()
    assert len(values) > 1_000_000
    posmap = _as_map(values)
    ref = np.empty(posmap.shape, np.float16)
    assert encode_posmap_into(posmap, F16, ref) == 0
    # The fast path itself answers (no fallback to the reference for the whole map).
    monkeypatch.setattr(posmap_float16, "encode_posmap_into", None)
    fast = np.empty(posmap.shape, np.float16)
    assert encode_posmap_fast(posmap, F16, fast) == 0
    diff = np.flatnonzero(ref.view(np.uint16).ravel() != fast.view(np.uint16).ravel())
    assert diff.size == 0, [(posmap.ravel()[i], ref.ravel()[i], fast.ravel()[i]) for i in diff[:5]]


@pytest.mark.parametrize("seed", range(4))
def test_same_bytes_on_position_maps(seed: int):
    rng = np.random.default_rng(seed)
    posmap = rng.uniform(-127.99, 383.99, size=(256, 256, 3)).astype(np.float32)
    posmap[:20, :20] = 0.0  # background
    posmap[20:22, :20] = 128.0  # differences of exactly 0
    ref_bytes, ref_lossy, fast_bytes, fast_lossy = _both(posmap)
    assert fast_bytes == ref_bytes and fast_lossy == ref_lossy == 0


def test_maps_outside_the_fast_path_take_the_reference():
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 256, size=(8, 8, 3)).astype(np.float32)
    wide = base.copy()
    wide[0, 0] = [-128.0, 384.0, 5000.0]  # outside (-128, 384): counted as lossy
    edge = base.copy()
    edge[3, 3, 0] = np.nextafter(np.float32(-128), np.float32(0))  # float32(x - 128) is -256
    huge = base.copy()
    huge[1, 1, 1] = 1e6  # float16 overflow
    for posmap in (wide, huge):
        with np.errstate(over="ignore"):
            ref_bytes, ref_lossy, fast_bytes, fast_lossy = _both(posmap)
        assert fast_bytes == ref_bytes and fast_lossy == ref_lossy > 0
    ref_bytes, ref_lossy, fast_bytes, fast_lossy = _both(edge)
    assert fast_bytes == ref_bytes and fast_lossy == ref_lossy == 0
    for posmap in (base.astype(np.float64), base[:, ::2], base):  # not float32, not contiguous
        assert _both(posmap)[2:] == _both(posmap)[:2]
    ref_bytes, _, fast_bytes, _ = _both(base, StorageOptions(posmap_dtype="float32"))
    assert fast_bytes == ref_bytes
    for bad in (np.nan, np.inf, -np.inf):
        posmap = base.copy()
        posmap[2, 2, 2] = bad
        with pytest.raises(ValueError, match="non-finite"):
            encode_posmap_fast(posmap, F16, np.empty(posmap.shape, np.float16))


def test_the_fast_range_is_the_safe_range():
    # The fast path stores |x - 128| < 256 and reports no coarse values: that is the safe range.
    assert FLOAT16_SAFE_HALF_RANGE == 256.0


def test_warning_unchanged_in_the_shard_writer(tmp_path):
    # The task's path (encode, then write_encoded_shard) warns about coarse values as before.
    from uvgen.h5store import SampleRecord
    from uvgen.h5write import write_encoded_shard

    posmap = np.full((1, 4, 4, 3), 500.0, np.float32)
    stored = np.empty(posmap.shape, np.float16)
    lossy = encode_posmap_fast(posmap[0], F16, stored[0])
    assert lossy == 48
    record = SampleRecord(
        name="a",
        source="a.mat",
        shape_para=np.zeros(199),
        exp_para=np.zeros(29),
        pose_para=np.zeros(7),
        transform=np.eye(3),
        jitter=np.zeros(3),
        yaw_deg=0.0,
        pitch_deg=0.0,
        roll_deg=0.0,
    )
    images = np.zeros((1, 4, 4, 3), np.uint8)
    with pytest.warns(PosmapPrecisionWarning):
        write_encoded_shard(tmp_path / "s.h5", images, stored, lossy, [record], F16)
