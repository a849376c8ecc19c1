"""Writing the UV ground truth (layout: uvgen.h5store): shards of samples, then one merged file.

Shards are written to a temporary name of their writer beside the final name
(``.NAME.PID.TOKEN.tmp``) and renamed (``os.replace``) only when complete, so an interrupted task
never leaves a half-written file under its final name, and two writers never share a file. Merging
copies the stored (possibly compressed) chunks of the shards as they are, shard by shard.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from uvgen.atomic import atomic_path
from uvgen.formats.errors import DataError
from uvgen.h5codec import (
    PosmapPrecisionWarning,
    StorageOptions,
    _compression_kwargs,
    encode_posmaps,
    stored_posmap_dtype,
)
from uvgen.h5store import (
    _ARRAY_FIELDS,
    _EXTRAS,
    _STRING_FIELDS,
    _UV,
    FORMAT_VERSION,
    N_KEYPOINTS,
    SPLITS,
    SampleRecord,
    UVData,
    _check_samples,
    _open,
)
from uvgen.weight_classes import CLASS_NAMES, check_classes

# ---------------------------------------------------------------------------------------------
# Writing


@contextmanager
def _atomic_h5(path: Path, durable: bool = False) -> Iterator[h5py.File]:
    """Yield an HDF5 file open for writing at a temporary name of this call
    (``.NAME.PID.TOKEN.tmp``); rename it to ``path`` only when the block completes (the temporary
    file is removed on error).

    The rename alone protects against a killed process; ``durable`` also fsyncs the data before
    the rename (against a machine crash), which costs a full write-back: used for final files,
    not for shards."""
    # This call's own temporary name (never another writer's file). No chunk cache: every chunk is
    # written whole once anyway, and a dirty cached chunk that fails to write (full disk) makes
    # HDF5 crash when the file is closed (segfault at exit). The file is closed before the rename.
    with atomic_path(path, durable) as tmp, h5py.File(tmp, "x", rdcc_nbytes=0) as f:
        yield f
        f.flush()


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
    for name, dtype, codec in (
        ("images", np.uint8, storage.compression),
        ("posmaps", storage.posmap_dtype, storage.posmap_codec),
    ):
        f.create_dataset(
            name,
            track_times=False,
            shape=(n, h, w, 3),
            dtype=dtype,
            chunks=chunk,
            maxshape=maxshape,
            **_compression_kwargs(codec),
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
    ``posmap_offset``, ``posmap_dtype`` and the codecs come from the shards, which must agree;
    ``uv_size`` is the maps' side (square maps; an ``attrs`` entry must equal it).
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
    if "uv_size" in attrs and (int(attrs["uv_size"]), int(attrs["uv_size"])) != (h, w):
        raise ValueError(f"attrs uv_size {attrs['uv_size']} but the shards' maps are {h}x{w}")

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
        classes = grp.create_dataset(
            "weight_class", track_times=False, data=np.asarray(uv.weight_class, dtype=np.uint8)
        )
        classes.attrs["classes"] = ", ".join(f"{k} {n}" for k, n in enumerate(CLASS_NAMES))
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
        if h == w:
            out.attrs["uv_size"] = h
        out.attrs["posmap_lossy_values"] = lossy
        out.attrs["kind"] = "dataset"


def _check_uv_arrays(path: Path, uv: UVData, hw: tuple[int, int]) -> None:
    h, w = hw
    problem = check_classes(uv.weight_class)
    if problem:
        raise DataError(path, f"{_UV}/weight_class", problem)
    for name, shape in {
        "weight_class": (h, w),
        "face_mask": (h, w),
        "kpt_uv": (2, N_KEYPOINTS),
    }.items():
        if np.shape(getattr(uv, name)) != shape:
            raise DataError(
                path, f"{_UV}/{name}", f"expected shape {shape}, got {np.shape(getattr(uv, name))}"
            )
    if np.ndim(uv.face_ind) != 1:
        raise DataError(path, f"{_UV}/face_ind", f"expected (K,), got {np.shape(uv.face_ind)}")
