"""HDF5 storage of the UV ground truth: one file per split, written as shards then merged.

Layout (the same per-sample layout in a shard and in the final file; N samples, H = W = 256):

* ``images``     (N,H,W,3) uint8, the input crops; one chunk per sample (1,H,W,3).
* ``posmaps``    (N,H,W,3) float16 or float32, the UV position maps in crop pixels (x right,
  y down, z depth >= 0) stored as ``posmap - posmap_offset``; one chunk per sample.
* ``names``, ``sources`` (N,) variable-length UTF-8 strings.
* ``shape_para`` (N,199), ``exp_para`` (N,29), ``pose_para`` (N,7) = [pitch, yaw, roll, tx, ty, tz,
  s], ``transform`` (N,3,3) (original image pixels -> crop pixels), ``jitter`` (N,3) = (r1, r2, r3),
  ``yaw_deg``/``pitch_deg``/``roll_deg`` (N,): all float64.
* ``extras/<name>`` (N, ...): optional fixed-shape per-sample arrays, e.g. ``landmarks_gt`` (N,68,3)
  float32 in original image pixels (test split).
* attributes ``format_version`` (1), ``posmap_offset``, ``posmap_dtype``, ``compression`` and
  ``posmap_compression`` (the codecs), ``posmap_lossy_values`` (number of map values stored
  coarser than 1/8 px) and ``kind`` ('shard' | 'dataset').

The final file adds ``uv/weight_mask`` (H,W) float32, ``uv/face_mask`` (H,W) uint8 (0/1),
``uv/kpt_uv`` (2,68) int32 (row 0 = column, row 1 = row), ``uv/face_ind`` (K,) int64 (flat indices
of the face-mask pixels) and the attributes ``model_checksum``, ``params`` (JSON) and ``split``.

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

Shards are written to a temporary name of their writer beside the final name
(``.NAME.PID.TOKEN.tmp``) and renamed (``os.replace``) only when complete, so an interrupted task
never leaves a half-written file under its final name, and two writers never share a file. Merging
copies the stored (possibly compressed) chunks of the shards as they are, shard by shard.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from uvgen.formats.errors import DataError
from uvgen.resumable import unique_tmp_name

FORMAT_VERSION = 1
COMPRESSIONS = ("none", "blosc-lz4", "gzip")
POSMAP_DTYPES = ("float16", "float32")
# float16 offset that centres the 1/8-px-or-finer range (-128, 384) on [-256, 256).
FLOAT16_OFFSET = 128.0
# |posmap - offset| below this keeps a float16 spacing of at most 1/8.
FLOAT16_SAFE_HALF_RANGE = 256.0
SPLITS = ("train", "test")
N_KEYPOINTS = 68

# Per-sample record datasets: name -> (shape per sample, dtype); strings have shape ().
_STRING_FIELDS = {"name": "names", "source": "sources"}
_ARRAY_FIELDS: dict[str, tuple[int, ...]] = {
    "shape_para": (199,),
    "exp_para": (29,),
    "pose_para": (7,),
    "transform": (3, 3),
    "jitter": (3,),
    "yaw_deg": (),
    "pitch_deg": (),
    "roll_deg": (),
}
_EXTRAS = "extras"
_UV = "uv"
_FILE_ATTRS = (
    "format_version",
    "model_checksum",
    "params",
    "split",
    "posmap_offset",
    "posmap_dtype",
)


class PosmapPrecisionWarning(UserWarning):
    """Position-map values fell outside the range that float16 storage keeps within 1/8 px."""


@dataclass(eq=False)
class SampleRecord:
    """Per-sample metadata stored beside the image and the position map.

    ``transform`` maps original image pixels (x right, y down, homogeneous) to crop pixels;
    ``pose_para`` is 300W-LP's [pitch, yaw, roll, tx, ty, tz, s] (radians); ``jitter`` the three
    uniform draws (r1, r2, r3) of the crop jitter; angles in degrees. ``extras`` holds optional
    fixed-shape arrays, e.g. ``landmarks_gt`` (68,3) float32 in original image pixels.
    """

    name: str
    source: str
    shape_para: np.ndarray
    exp_para: np.ndarray
    pose_para: np.ndarray
    transform: np.ndarray
    jitter: np.ndarray
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SampleRecord):
            return NotImplemented
        if (self.name, self.source) != (other.name, other.source):
            return False
        if any(not np.array_equal(getattr(self, k), getattr(other, k)) for k in _ARRAY_FIELDS):
            return False
        if self.extras.keys() != other.extras.keys():
            return False
        return all(
            self.extras[k].dtype == other.extras[k].dtype
            and np.array_equal(self.extras[k], other.extras[k])
            for k in self.extras
        )


@dataclass(frozen=True, eq=False)
class UVData:
    """The UV-space data shared by every sample of a file (H = W = 256 for PRNet).

    weight_mask: (H,W) float32 loss weights. face_mask: (H,W) bool. kpt_uv: (2,68) int32 UV pixel
    of each key point, row 0 = column, row 1 = row. face_ind: (K,) int64 flat indices
    (row * W + col) of the face-mask pixels.
    """

    weight_mask: np.ndarray
    face_mask: np.ndarray
    kpt_uv: np.ndarray
    face_ind: np.ndarray


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


# ---------------------------------------------------------------------------------------------
# Writing


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _atomic_h5(path: Path, durable: bool = False) -> Iterator[h5py.File]:
    """Yield an HDF5 file open for writing at a temporary name of this call
    (``.NAME.PID.TOKEN.tmp``); rename it to ``path`` only when the block completes (the temporary
    file is removed on error).

    The rename alone protects against a killed process; ``durable`` also fsyncs the data before
    the rename (against a machine crash), which costs a full write-back: used for final files,
    not for shards."""
    path = Path(path)
    tmp = unique_tmp_name(path)  # this call's own name: never another writer's open file
    # No chunk cache: every chunk is written whole once anyway, and a dirty cached chunk that fails
    # to write (full disk) makes HDF5 crash when the file is closed (segfault at exit).
    f = h5py.File(tmp, "x", rdcc_nbytes=0)
    try:
        with f:
            yield f
            f.flush()
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_batch(
    path: Path, images: np.ndarray, posmaps: np.ndarray, records: Sequence[SampleRecord]
) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(
            path, "images", f"expected (B,H,W,3) uint8, got {images.shape} {images.dtype}"
        )
    if posmaps.shape != images.shape or not np.issubdtype(posmaps.dtype, np.floating):
        raise DataError(
            path, "posmaps", f"expected float {images.shape}, got {posmaps.shape} {posmaps.dtype}"
        )
    if len(records) != len(images):
        raise DataError(path, "records", f"{len(records)} records for {len(images)} images")
    extras_spec = _extras_spec(records[0]) if records else {}
    for i, rec in enumerate(records):
        for key, shape in _ARRAY_FIELDS.items():
            if np.shape(getattr(rec, key)) != shape:
                raise DataError(
                    path,
                    f"records[{i}].{key}",
                    f"expected shape {shape}, got {np.shape(getattr(rec, key))}",
                )
        if _extras_spec(rec) != extras_spec:
            raise DataError(
                path, f"records[{i}].extras", f"expected {extras_spec}, got {_extras_spec(rec)}"
            )
    for key in extras_spec:
        if not key or "/" in key:
            raise DataError(
                path, f"extras/{key}", "extras names must be non-empty and contain no '/'"
            )


def _extras_spec(rec: SampleRecord) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return {k: (np.shape(v), np.asarray(v).dtype) for k, v in sorted(rec.extras.items())}


def _create_sample_datasets(
    f: h5py.File,
    n: int,
    image_hw: tuple[int, int],
    storage: StorageOptions,
    extras_spec: Mapping[str, tuple[tuple[int, ...], np.dtype]],
) -> None:
    """Create the empty per-sample datasets of an n-sample file and its storage attributes."""
    h, w = image_hw
    chunk = (1, h, w, 3)
    maxshape = (None, h, w, 3)  # lets an empty shard hold a (1,H,W,3) chunk layout
    f.create_dataset(
        "images",
        track_times=False,
        shape=(n, h, w, 3),
        dtype=np.uint8,
        chunks=chunk,
        maxshape=maxshape,
        **_compression_kwargs(storage.compression),
    )
    f.create_dataset(
        "posmaps",
        track_times=False,
        shape=(n, h, w, 3),
        dtype=storage.posmap_dtype,
        chunks=chunk,
        maxshape=maxshape,
        **_compression_kwargs(storage.posmap_codec),
    )
    for dname in _STRING_FIELDS.values():
        f.create_dataset(dname, track_times=False, shape=(n,), dtype=h5py.string_dtype())
    for key, shape in _ARRAY_FIELDS.items():
        f.create_dataset(key, track_times=False, shape=(n, *shape), dtype=np.float64)
    grp = f.create_group(_EXTRAS)
    for key, (shape, dtype) in extras_spec.items():
        grp.create_dataset(key, track_times=False, shape=(n, *shape), dtype=dtype)
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["posmap_offset"] = storage.posmap_offset
    f.attrs["posmap_dtype"] = storage.posmap_dtype
    f.attrs["compression"] = storage.compression
    f.attrs["posmap_compression"] = storage.posmap_codec


def _write_records(f: h5py.File, start: int, records: Sequence[SampleRecord]) -> None:
    """Write ``records`` to rows start .. start+len(records) of the record datasets."""
    stop = start + len(records)
    if not records:
        return
    for attr, dname in _STRING_FIELDS.items():
        f[dname][start:stop] = [str(getattr(r, attr)) for r in records]
    for key in _ARRAY_FIELDS:
        f[key][start:stop] = np.stack(
            [np.asarray(getattr(r, key), dtype=np.float64) for r in records]
        )
    for key in f[_EXTRAS]:
        f[_EXTRAS][key][start:stop] = np.stack([np.asarray(r.extras[key]) for r in records])


def write_shard(
    path: Path,
    images: np.ndarray,
    posmaps: np.ndarray,
    records: list[SampleRecord],
    storage: StorageOptions,
    lap: Callable[[str], None] | None = None,
) -> None:
    """Write B samples to the shard ``path`` atomically (via a temporary name and ``os.replace``).

    images: (B,H,W,3) uint8 crops. posmaps: (B,H,W,3) float position maps in crop pixels.
    Warns (:class:`PosmapPrecisionWarning`) when float16 storage of some values is coarser than 1/8
    px. Raises DataError (naming ``path`` and the field) for inconsistent input.
    """
    path = Path(path)
    images = np.asarray(images)
    posmaps = np.asarray(posmaps)
    _check_batch(path, images, posmaps, records)
    try:
        stored, lossy = encode_posmaps(posmaps, storage)
    except ValueError as exc:
        raise DataError(path, "posmaps", f"non-finite values ({exc})") from None
    if lap:
        lap("float16 encode")
    write_encoded_shard(path, images, stored, lossy, records, storage, lap)


def write_encoded_shard(
    path: Path,
    images: np.ndarray,
    stored: np.ndarray,
    lossy: int,
    records: list[SampleRecord],
    storage: StorageOptions,
    lap: Callable[[str], None] | None = None,
) -> None:
    """:func:`write_shard` for maps already encoded (:func:`encode_posmap_into`): ``stored``
    (B,H,W,3) in the stored dtype, ``lossy`` the count of coarse values."""
    path = Path(path)
    lap = lap or (lambda step: None)
    if stored.dtype != stored_posmap_dtype(storage):
        raise DataError(
            path,
            "posmaps",
            f"expected stored dtype {stored_posmap_dtype(storage)}, got {stored.dtype}",
        )
    _check_batch(path, images, stored, records)
    if lossy:
        warnings.warn(
            f"{path}: {lossy} position-map values lie outside (-128, 384) px and are stored with a "
            f"float16 precision coarser than 1/8 px "
            f"(use posmap_dtype='float32' to keep them exact)",
            PosmapPrecisionWarning,
            stacklevel=2,
        )
    extras_spec = _extras_spec(records[0]) if records else {}
    with _atomic_h5(path) as f:
        _create_sample_datasets(f, len(images), images.shape[1:3], storage, extras_spec)
        f["images"][...] = images
        f["posmaps"][...] = stored
        _write_records(f, 0, records)
        f.attrs["posmap_lossy_values"] = lossy
        f.attrs["kind"] = "shard"
    lap("HDF5 write (blosc)")


# ---------------------------------------------------------------------------------------------
# Validation


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(path, None, f"cannot open as HDF5: {exc}") from exc


def _attr(f: h5py.File, path: Path, name: str) -> Any:
    if name not in f.attrs:
        raise DataError(path, name, "missing attribute")
    value = f.attrs[name]
    return value.decode() if isinstance(value, bytes) else value


def _dataset(f: h5py.File, path: Path, name: str) -> h5py.Dataset:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise DataError(path, name, "missing dataset")
    return obj


def _check_samples(f: h5py.File, path: Path) -> int:
    """Check the per-sample layout (shard or final file); return the sample count."""
    version = _attr(f, path, "format_version")
    if int(version) != FORMAT_VERSION:
        raise DataError(
            path, "format_version", f"unsupported version {version} (expected {FORMAT_VERSION})"
        )
    posmap_dtype = _attr(f, path, "posmap_dtype")
    if posmap_dtype not in POSMAP_DTYPES:
        raise DataError(path, "posmap_dtype", f"unknown value {posmap_dtype!r}")
    offset = float(_attr(f, path, "posmap_offset"))
    if not np.isfinite(offset):
        raise DataError(path, "posmap_offset", f"non-finite value {offset}")
    images = _dataset(f, path, "images")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(
            path, "images", f"expected (N,H,W,3) uint8, got {images.shape} {images.dtype}"
        )
    n = images.shape[0]
    posmaps = _dataset(f, path, "posmaps")
    if posmaps.shape != images.shape or posmaps.dtype != np.dtype(posmap_dtype):
        raise DataError(
            path,
            "posmaps",
            f"expected {images.shape} {posmap_dtype}, got {posmaps.shape} {posmaps.dtype}",
        )
    expected = {d: (n,) for d in _STRING_FIELDS.values()}
    expected.update({k: (n, *s) for k, s in _ARRAY_FIELDS.items()})
    for name, shape in expected.items():
        shape_on_disk = _dataset(f, path, name).shape
        if shape_on_disk != shape:
            raise DataError(
                path, name, f"expected shape {shape} for {n} samples, got {shape_on_disk}"
            )
    extras = f.get(_EXTRAS, {})
    for key in extras:
        dset = _dataset(f, path, f"{_EXTRAS}/{key}")
        if dset.shape[:1] != (n,):
            raise DataError(path, f"{_EXTRAS}/{key}", f"expected {n} rows, got shape {dset.shape}")
    return n


def _check_uv(f: h5py.File, path: Path, hw: tuple[int, int]) -> None:
    h, w = hw
    shapes = {"weight_mask": (h, w), "face_mask": (h, w), "kpt_uv": (2, N_KEYPOINTS)}
    for name, shape in shapes.items():
        got = _dataset(f, path, f"{_UV}/{name}").shape
        if got != shape:
            raise DataError(path, f"{_UV}/{name}", f"expected shape {shape}, got {got}")
    kpt = f[f"{_UV}/kpt_uv"][...]
    if kpt.min() < 0 or kpt[0].max() >= w or kpt[1].max() >= h:
        raise DataError(path, f"{_UV}/kpt_uv", f"key points outside the {w}x{h} UV map")
    face_ind = _dataset(f, path, f"{_UV}/face_ind")
    if face_ind.ndim != 1:
        raise DataError(path, f"{_UV}/face_ind", f"expected (K,), got {face_ind.shape}")
    ind = face_ind[...]
    if ind.size and (ind.min() < 0 or ind.max() >= h * w):
        raise DataError(path, f"{_UV}/face_ind", f"flat indices outside [0, {h * w})")


def _check_file(f: h5py.File, path: Path) -> int:
    n = _check_samples(f, path)
    for name in _FILE_ATTRS:
        _attr(f, path, name)
    split = _attr(f, path, "split")
    if split not in SPLITS:
        raise DataError(path, "split", f"expected one of {SPLITS}, got {split!r}")
    try:
        json.loads(_attr(f, path, "params"))
    except (TypeError, ValueError) as exc:
        raise DataError(path, "params", f"not a JSON string: {exc}") from exc
    _check_uv(f, path, f["images"].shape[1:3])
    return n


def validate_file(path: Path) -> None:
    """Check a merged file: every dataset and attribute present, consistent lengths and shapes.

    Raises DataError(path, field, reason) naming the first problem found.
    """
    path = Path(path)
    with _open(path) as f:
        _check_file(f, path)


def read_shard_names(path: Path) -> list[str]:
    """The sample names of a finished shard (or merged file), in order; DataError if unreadable."""
    path = Path(path)
    with _open(path) as f:
        _check_samples(f, path)
        return list(f["names"].asstr()[...])


# ---------------------------------------------------------------------------------------------
# Merging


def _filters(dset: h5py.Dataset) -> list[tuple]:
    dcpl = dset.id.get_create_plist()
    return [dcpl.get_filter(i)[:3] for i in range(dcpl.get_nfilters())]


def _copy_chunked(src: h5py.Dataset, dst: h5py.Dataset, start: int) -> None:
    """Copy the one-sample chunks of ``src`` to rows start.. of ``dst``.

    When the filter pipelines match and every chunk is stored, the stored (compressed) bytes are
    copied as they are; otherwise samples are decoded and re-encoded one at a time.
    """
    n = src.shape[0]
    raw = (
        src.chunks == dst.chunks
        and src.chunks is not None
        and src.chunks[0] == 1
        and _filters(src) == _filters(dst)
        and src.id.get_num_chunks() == n
    )
    tail = (0,) * (src.ndim - 1)
    for j in range(n):
        if raw:
            mask, data = src.id.read_direct_chunk((j, *tail))
            dst.id.write_direct_chunk((start + j, *tail), data, mask)
        else:
            dst[start + j] = src[j]


def _read_records(f: h5py.File, start: int = 0, stop: int | None = None) -> list[SampleRecord]:
    stop = f["images"].shape[0] if stop is None else stop
    names = f["names"].asstr()[start:stop]
    sources = f["sources"].asstr()[start:stop]
    arrays = {k: f[k][start:stop] for k in _ARRAY_FIELDS}
    extras = {k: f[_EXTRAS][k][start:stop] for k in f.get(_EXTRAS, {})}
    out = []
    for j in range(stop - start):
        scalars = {
            k: (float(arrays[k][j]) if _ARRAY_FIELDS[k] == () else arrays[k][j]) for k in arrays
        }
        out.append(
            SampleRecord(
                name=str(names[j]),
                source=str(sources[j]),
                extras={k: v[j] for k, v in extras.items()},
                **scalars,
            )
        )
    return out


def _shard_layout(f: h5py.File) -> dict[str, Any]:
    """What must agree between shards for them to be merged."""
    return {
        "image_hw": tuple(f["images"].shape[1:3]),
        "posmap_dtype": f.attrs["posmap_dtype"],
        "posmap_offset": float(f.attrs["posmap_offset"]),
        "compression": f.attrs.get("compression", "none"),
        "posmap_compression": f.attrs.get("posmap_compression", f.attrs.get("compression", "none")),
    }


def merge_shards(shard_paths: list[Path], out_path: Path, uv: UVData, attrs: dict) -> None:
    """Merge shards (in the given order) into the final file ``out_path``, atomically.

    Samples are streamed shard by shard (stored chunks copied as they are). ``attrs`` must hold
    ``model_checksum`` (str), ``params`` (JSON string or a JSON-serialisable mapping) and ``split``
    ('train' | 'test'); further entries are written as extra attributes. ``format_version``,
    ``posmap_offset``, ``posmap_dtype`` and the codecs come from the shards, which must agree.
    """
    out_path = Path(out_path)
    shard_paths = [Path(p) for p in shard_paths]
    if not shard_paths:
        raise ValueError("merge_shards needs at least one shard")
    missing = [k for k in ("model_checksum", "params", "split") if k not in attrs]
    if missing:
        raise ValueError(f"merge_shards attrs lack {missing}")
    if attrs["split"] not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {attrs['split']!r}")

    counts, layout, extras_spec, lossy = [], None, None, 0
    for p in shard_paths:
        with _open(p) as f:
            counts.append(_check_samples(f, p))
            this = _shard_layout(f)
            if layout is None:
                layout = this
            for key, value in this.items():
                if value != layout[key]:
                    raise DataError(
                        p, key, f"{value!r} differs from {layout[key]!r} in {shard_paths[0]}"
                    )
            if counts[-1]:
                spec = {k: (d.shape[1:], d.dtype) for k, d in sorted(f.get(_EXTRAS, {}).items())}
                if extras_spec is None:
                    extras_spec = spec
                elif spec != extras_spec:
                    raise DataError(
                        p, _EXTRAS, f"extras {spec} differ from earlier shards' {extras_spec}"
                    )
            lossy += int(f.attrs.get("posmap_lossy_values", 0))
    storage = StorageOptions(
        posmap_dtype=layout["posmap_dtype"],
        compression=layout["compression"],
        posmap_compression=layout["posmap_compression"],
    )
    h, w = layout["image_hw"]
    _check_uv_arrays(out_path, uv, (h, w))

    with _atomic_h5(out_path, durable=True) as out:
        _create_sample_datasets(out, sum(counts), (h, w), storage, extras_spec or {})
        start = 0
        for p, n in zip(shard_paths, counts):
            if n == 0:  # an empty shard may lack the extras of the others
                continue
            with h5py.File(p, "r") as f:
                _copy_chunked(f["images"], out["images"], start)
                _copy_chunked(f["posmaps"], out["posmaps"], start)
                for dname in (*_STRING_FIELDS.values(), *_ARRAY_FIELDS):
                    out[dname][start : start + n] = f[dname][...]
                for key in out[_EXTRAS]:
                    out[_EXTRAS][key][start : start + n] = f[_EXTRAS][key][...]
            start += n
        grp = out.create_group(_UV)
        grp.create_dataset(
            "weight_mask", track_times=False, data=np.asarray(uv.weight_mask, dtype=np.float32)
        )
        grp.create_dataset(
            "face_mask", track_times=False, data=np.asarray(uv.face_mask).astype(np.uint8)
        )
        grp.create_dataset("kpt_uv", track_times=False, data=np.asarray(uv.kpt_uv, dtype=np.int32))
        grp.create_dataset(
            "face_ind", track_times=False, data=np.asarray(uv.face_ind, dtype=np.int64)
        )
        for key, value in attrs.items():
            if key == "params" and not isinstance(value, str):
                value = json.dumps(value, sort_keys=True)
            out.attrs[key] = value
        out.attrs["posmap_lossy_values"] = lossy
        out.attrs["kind"] = "dataset"


def _check_uv_arrays(path: Path, uv: UVData, hw: tuple[int, int]) -> None:
    h, w = hw
    for name, shape in {
        "weight_mask": (h, w),
        "face_mask": (h, w),
        "kpt_uv": (2, N_KEYPOINTS),
    }.items():
        if np.shape(getattr(uv, name)) != shape:
            raise DataError(
                path, f"{_UV}/{name}", f"expected shape {shape}, got {np.shape(getattr(uv, name))}"
            )
    if np.ndim(uv.face_ind) != 1:
        raise DataError(path, f"{_UV}/face_ind", f"expected (K,), got {np.shape(uv.face_ind)}")


# ---------------------------------------------------------------------------------------------
# Reading


class PositionMapFile:
    """Read-only access to a merged file (validated on opening); a context manager.

    ``image(i)`` (H,W,3) uint8; ``posmap(i)`` (H,W,3) float32 crop pixels (offset added back).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = _open(self.path)
        try:
            self._n = _check_file(self._f, self.path)
            self._offset = float(self._f.attrs["posmap_offset"])
        except BaseException:
            self._f.close()
            raise

    def __len__(self) -> int:
        return self._n

    def __enter__(self) -> PositionMapFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    def image(self, i: int) -> np.ndarray:
        return self._f["images"][self._index(i)]

    def posmap(self, i: int) -> np.ndarray:
        return decode_posmap(self._f["posmaps"][self._index(i)], self._offset)

    def record(self, i: int) -> SampleRecord:
        i = self._index(i)
        return _read_records(self._f, i, i + 1)[0]

    def records(self) -> list[SampleRecord]:
        """All records in order (the metadata only; no images or maps)."""
        return _read_records(self._f)

    @property
    def names(self) -> list[str]:
        return list(self._f["names"].asstr()[...])

    @property
    def uv(self) -> UVData:
        g = self._f[_UV]
        return UVData(
            weight_mask=g["weight_mask"][...],
            face_mask=g["face_mask"][...].astype(bool),
            kpt_uv=g["kpt_uv"][...],
            face_ind=g["face_ind"][...],
        )

    @property
    def attrs(self) -> dict[str, Any]:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._f.attrs.items()}

    @property
    def params(self) -> dict:
        """The ``params`` attribute, parsed from JSON."""
        return json.loads(self.attrs["params"])

    def _index(self, i: int) -> int:
        i = int(i)
        if not -self._n <= i < self._n:
            raise IndexError(f"sample {i} out of range for {self._n} samples in {self.path}")
        return i % self._n
