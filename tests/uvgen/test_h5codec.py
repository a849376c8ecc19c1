"""uvgen.h5codec: the position-map codec and the storage options."""

from __future__ import annotations

import numpy as np
import pytest

from uvgen.h5codec import StorageOptions, encode_posmap_into, encode_posmaps


def test_float16_encoding_rounds_once_from_the_exact_difference():
    rng = np.random.default_rng(11)
    # Values whose float32 difference with 128 is inexact (below 64 with low bits set) included.
    maps = rng.uniform(-130.0, 400.0, size=(3, 16, 16, 3)).astype(np.float32)
    maps[0, 0, 0] = [1e-7, 63.999996, -127.99999]
    storage = StorageOptions(posmap_dtype="float16")
    stored, lossy = encode_posmaps(maps, storage)
    expected = (maps.astype(np.float64) - 128.0).astype(np.float16)
    assert stored.tobytes() == expected.tobytes()
    assert lossy == int(np.count_nonzero(~(np.abs(maps.astype(np.float64) - 128.0) < 256.0)))
    out = np.empty(maps.shape[1:], np.float16)
    bad = maps[1].copy()
    bad[3, 3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        encode_posmap_into(bad, storage, out)
