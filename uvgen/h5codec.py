"""How the UV ground truth's images and position maps are stored: the storage options (map dtype,
codecs) and the position-map codec (float16 ``map - 128`` or float32), shared by the shard writer
(uvgen.h5write) and the reader (uvgen.h5store).

Precision: float16 has a spacing of 1/8 in [128, 256), so ``posmap - 128`` stored as float16 is
within 1/16 px of the true value (spacing <= 1/8 px) for every value in (-128, 384). Values outside
that range are counted, warned about (:class:`PosmapPrecisionWarning`) and recorded in the attribute
``posmap_lossy_values``; ``posmap_dtype='float32'`` (offset 0) stores maps exactly.

Compression (``benchmarks/bench_h5_compression.py``, 2-core development machine shared with other
jobs, so rates are +-30 %; float16 maps; sizes in KB = 1000 bytes per sample; random reads of image
+ map from a file in the page cache, one thread; "dataset" = through
model.h5dataset.PositionMapDataset, decoded):

    =================  ========  =========  ==========  ========  ===========  =========
    images : maps      image KB  posmap KB  write s     raw /s    dataset /s   122,450
    =================  ========  =========  ==========  ========  ===========  =========
    synthetic images, ``--count 2000``
    none               196.6     393.2      2.9         10,600    7,200        72.2 GB
    blosc-lz4          189.3     264.1      3.7          4,600    3,900        55.5 GB
    gzip-4             155.7     332.5      63          200       210          59.8 GB
    none : blosc-lz4   196.6     264.1      3.2          4,900    4,000        56.4 GB
    crops of the 16 real AFLW2000 photos in the fixtures, ``--count 1000 --photos``
    none               196.6     393.2      1.5         10,100    6,900        72.2 GB
    blosc-lz4          145.8     264.1      1.7          4,500    3,700        50.2 GB
    gzip-4             114.8     332.5      22.5         380       390          54.8 GB
    =================  ========  =========  ==========  ========  ===========  =========

Smooth maps shrink by a third with Blosc-LZ4 + shuffle; real photo crops by a quarter (the
synthetic images, noisier than photos, hardly at all); gzip is 10-20x slower to read and write.
Default: 'blosc-lz4' for images and maps: 30 % smaller (50 GB instead of 72 GB for the full
300W-LP, which then fits a 64 GiB disk) at ~4,000 decoded samples/s per reading process (a
DataLoader with a few workers multiplies that); once the maps are compressed, compressing the
images too costs no measurable read speed.
``compression='none'`` doubles the single-process read rate when disk space is no concern.
The table was measured at Blosc level 5. Level 3, the default since, writes a task's shard
~0.05 ms/sample faster (0.50-0.52 vs 0.54-0.56 ms CPU per sample, one core) for 0.6-0.8 % more
bytes: 459.7 vs 456.0 KB/sample on the synthetic 300W-LP crops and maps of
``benchmarks/bench_uvgen.py``, 440.3 vs 437.6 on its real AFLW2000-3D crops (level 1: 463.2 KB at
~0.50 ms; level 9: 429.1 KB at ~0.67 ms, synthetic). Reading is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hdf5plugin
import numpy as np

COMPRESSIONS = ("none", "blosc-lz4", "gzip")
POSMAP_DTYPES = ("float16", "float32")
# float16 offset that centres the 1/8-px-or-finer range (-128, 384) on [-256, 256).
FLOAT16_OFFSET = 128.0
# |posmap - offset| below this keeps a float16 spacing of at most 1/8.
FLOAT16_SAFE_HALF_RANGE = 256.0


class PosmapPrecisionWarning(UserWarning):
    """Position-map values fell outside the range that float16 storage keeps within 1/8 px."""


@dataclass(frozen=True)
class StorageOptions:
    """How images and maps are stored (defaults chosen by measurement: see the module docstring).

    posmap_dtype: 'float16' (maps - 128, <= 1/8 px spacing in (-128, 384)) or 'float32' (exact).
    compression: codec of the images, and of the maps unless ``posmap_compression`` is given;
    one of 'none', 'blosc-lz4' (Blosc LZ4 level 3 + byte shuffle), 'gzip' (level 4).
    posmap_compression: codec of the maps; None = the same as ``compression``.
    """

    posmap_dtype: str = "float16"
    compression: str = "blosc-lz4"
    posmap_compression: str | None = None

    def __post_init__(self) -> None:
        if self.posmap_dtype not in POSMAP_DTYPES:
            raise ValueError(
                f"posmap_dtype must be one of {POSMAP_DTYPES}, got {self.posmap_dtype!r}"
            )
        for name in ("compression", "posmap_compression"):
            value = getattr(self, name)
            if value not in COMPRESSIONS and not (name == "posmap_compression" and value is None):
                raise ValueError(f"{name} must be one of {COMPRESSIONS}, got {value!r}")

    @property
    def posmap_codec(self) -> str:
        """The codec actually used for the maps."""
        return self.compression if self.posmap_compression is None else self.posmap_compression

    @property
    def posmap_offset(self) -> float:
        """Subtracted from the maps before storage (128 for float16, 0 for float32)."""
        return FLOAT16_OFFSET if self.posmap_dtype == "float16" else 0.0


# ---------------------------------------------------------------------------------------------
# Encoding


def stored_posmap_dtype(storage: StorageOptions) -> np.dtype:
    """The on-disk dtype of the maps."""
    return np.dtype(np.float16 if storage.posmap_dtype == "float16" else np.float32)


def encode_posmap_into(
    posmap: np.ndarray, storage: StorageOptions, out: np.ndarray, scratch: np.ndarray | None = None
) -> int:
    """Encode one map (H,W,3) float in crop pixels into ``out`` (the stored dtype); return the
    count of values stored coarser than 1/8 px (always 0 for float32).

    float16 stores ``posmap - 128`` rounded once to nearest: within 1/16 px in (-128, 384).
    ``scratch`` (float64, the map's shape) avoids an allocation. Raises ValueError when the map
    holds non-finite values."""
    lo, hi = float(posmap.min()), float(posmap.max())  # NaN and inf show here
    if not np.isfinite(lo + hi):
        raise ValueError("non-finite values")
    if storage.posmap_dtype == "float32":
        out[...] = posmap
        return 0
    offset = storage.posmap_offset
    shifted = np.empty(posmap.shape, np.float64) if scratch is None else scratch
    np.subtract(
        posmap, offset, out=shifted, dtype=np.float64
    )  # exact: float32 values minus 128, in float64
    lossy = 0
    if not (lo - offset > -FLOAT16_SAFE_HALF_RANGE and hi - offset < FLOAT16_SAFE_HALF_RANGE):
        lossy = int(np.count_nonzero(~(np.abs(shifted) < FLOAT16_SAFE_HALF_RANGE)))
    out[...] = shifted  # the one rounding, float64 -> float16
    return lossy


def encode_posmaps(posmaps: np.ndarray, storage: StorageOptions) -> tuple[np.ndarray, int]:
    """Position maps (B,...) float, crop pixels -> stored values and the count of values whose
    stored precision is coarser than 1/8 px (see :func:`encode_posmap_into`)."""
    posmaps = np.asarray(posmaps)
    stored = np.empty(posmaps.shape, stored_posmap_dtype(storage))
    scratch = np.empty(posmaps.shape[1:], np.float64)
    lossy = 0
    for k in range(len(posmaps)):
        try:
            lossy += encode_posmap_into(posmaps[k], storage, stored[k], scratch)
        except ValueError as exc:
            raise ValueError(f"map {k}: {exc}") from None
    return stored, lossy


def decode_posmap(stored: np.ndarray, offset: float) -> np.ndarray:
    """Stored map values -> float32 array in crop pixels (the offset added back, in float32).

    The training reader (``model.h5dataset``) decodes the same way with torch, bit for bit."""
    out = np.asarray(stored).astype(np.float32)
    if offset:
        out += np.float32(offset)
    return out


def _compression_kwargs(compression: str) -> dict[str, Any]:
    if compression == "none":
        return {}
    if compression == "blosc-lz4":
        return dict(hdf5plugin.Blosc(cname="lz4", clevel=3, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
