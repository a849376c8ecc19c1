"""uvgen.h5store: shards -> merged file -> reader (the torch Dataset is tested in
tests/model/test_h5dataset.py)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from uvgen import h5store
from uvgen.formats.errors import DataError
from uvgen.h5store import (
    PositionMapFile,
    PosmapPrecisionWarning,
    SampleRecord,
    StorageOptions,
    UVData,
    merge_shards,
    read_shard_names,
    validate_file,
    write_shard,
)

N = 12
ATTRS = {
    "model_checksum": "sha256:abc",
    "params": {"crop": {"scale": 1.5}, "seed": 3},
    "split": "test",
}


def _samples(n: int = N, seed: int = 0, lo: float = -127.9, hi: float = 383.9):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 256, 256, 3), dtype=np.uint8)
    posmaps = rng.uniform(lo, hi, size=(n, 256, 256, 3)).astype(np.float32)
    records = [
        SampleRecord(
            name=f"AFW_{k}_1_0" if k % 2 else f"HÉLEN_{k}",  # non-ASCII on purpose
            source=f"/data/300W_LP/AFW/AFW_{k}_1_0.jpg",
            shape_para=rng.normal(size=199) * 1e5,
            exp_para=rng.normal(size=29),
            pose_para=rng.normal(size=7),
            transform=rng.normal(size=(3, 3)),
            jitter=rng.random(3),
            yaw_deg=float(rng.uniform(-99, 99)),
            pitch_deg=float(rng.uniform(-30, 30)),
            roll_deg=float(rng.uniform(-30, 30)),
            extras={"landmarks_gt": rng.normal(size=(68, 3)).astype(np.float32)},
        )
        for k in range(n)
    ]
    return images, posmaps, records


def _uv() -> UVData:
    face = np.zeros((256, 256), bool)
    face[30:220, 40:210] = True
    rng = np.random.default_rng(9)
    return UVData(
        weight_mask=np.where(face, 3.0, 0.0).astype(np.float32),
        face_mask=face,
        kpt_uv=rng.integers(0, 256, size=(2, 68)).astype(np.int32),
        face_ind=np.flatnonzero(face).astype(np.int64),
    )


def _build(tmp: Path, sizes: list[int], storage: StorageOptions, name: str = "data.h5") -> Path:
    images, posmaps, records = _samples(sum(sizes))
    shards, start = [], 0
    for k, n in enumerate(sizes):
        shard = tmp / f"{name}.shard{k:03d}.h5"
        write_shard(
            shard,
            images[start : start + n],
            posmaps[start : start + n],
            records[start : start + n],
            storage,
        )
        shards.append(shard)
        start += n
    out = tmp / name
    merge_shards(shards, out, _uv(), ATTRS)
    return out


@pytest.fixture(scope="module")
def merged16(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("h5"), [5, 7], StorageOptions(posmap_dtype="float16"))


def test_round_trip_float16(merged16: Path):
    images, posmaps, records = _samples()
    uv = _uv()
    with PositionMapFile(merged16) as f:
        assert len(f) == N
        for i in range(N):
            np.testing.assert_array_equal(f.image(i), images[i])
            got = f.posmap(i)
            assert got.dtype == np.float32
            assert np.abs(got - posmaps[i]).max() <= 1 / 16
            assert f.record(i) == records[i]
        assert f.records() == records
        assert f.names == [r.name for r in records]
        for key in ("weight_mask", "face_mask", "kpt_uv", "face_ind"):
            np.testing.assert_array_equal(getattr(f.uv, key), getattr(uv, key))
        assert f.uv.face_mask.dtype == bool
        attrs = f.attrs
        assert attrs["format_version"] == 1
        assert attrs["split"] == "test" and attrs["model_checksum"] == "sha256:abc"
        assert attrs["posmap_dtype"] == "float16" and attrs["posmap_offset"] == 128.0
        assert f.params == ATTRS["params"]
        assert attrs["posmap_lossy_values"] == 0
    validate_file(merged16)


def test_round_trip_float32_is_exact(tmp_path: Path):
    images, posmaps, records = _samples(4)
    posmaps[0, 0, 0] = [-1000.5, 5000.25, 1e-3]  # far outside the float16-safe range
    write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions(posmap_dtype="float32"))
    merge_shards([tmp_path / "s.h5"], tmp_path / "out.h5", _uv(), ATTRS)
    with PositionMapFile(tmp_path / "out.h5") as f:
        assert f.attrs["posmap_offset"] == 0.0
        for i in range(4):
            np.testing.assert_array_equal(f.posmap(i), posmaps[i])
            np.testing.assert_array_equal(f.image(i), images[i])


def test_out_of_range_values_warn_and_are_counted(tmp_path: Path):
    images, posmaps, records = _samples(2)
    posmaps[0, 0, 0, 0] = 384.0
    posmaps[1, 5, 5, 2] = -128.0
    posmaps[1, 6, 5, 2] = -127.99  # still safe
    with pytest.warns(PosmapPrecisionWarning, match="2 position-map values"):
        write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions())
    merge_shards([tmp_path / "s.h5"], tmp_path / "out.h5", _uv(), ATTRS)
    with PositionMapFile(tmp_path / "out.h5") as f:
        assert f.attrs["posmap_lossy_values"] == 2


def _contents(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None
            )
        )
        out["@attrs"] = dict(f.attrs)
    return out


@pytest.mark.parametrize(
    "compression, posmap_compression",
    [("none", None), ("blosc-lz4", None), ("gzip", None), ("none", "blosc-lz4")],
)
def test_merged_file_independent_of_sharding(
    tmp_path: Path, compression: str, posmap_compression: str | None
):
    storage = StorageOptions(compression=compression, posmap_compression=posmap_compression)
    files = [
        _build(tmp_path, sizes, storage, f"m{k}.h5")
        for k, sizes in enumerate([[N], [3, 4, 5], [1] * N, [0, N, 0]])
    ]
    ref = _contents(files[0])
    assert set(ref) >= {
        "images",
        "posmaps",
        "names",
        "sources",
        "shape_para",
        "extras/landmarks_gt",
        "uv/face_ind",
    }
    for other in files[1:]:
        got = _contents(other)
        assert got.keys() == ref.keys()
        for key in ref:
            if key == "@attrs":
                assert got[key] == ref[key]
            else:
                np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    with h5py.File(files[0], "r") as f:
        assert f["images"].chunks == (1, 256, 256, 3) and f["posmaps"].chunks == (1, 256, 256, 3)
        assert f.attrs["compression"] == compression
        assert f.attrs["posmap_compression"] == (posmap_compression or compression)
        assert (f["images"].id.get_create_plist().get_nfilters() > 0) == (compression != "none")
        assert (f["posmaps"].id.get_create_plist().get_nfilters() > 0) == (
            storage.posmap_codec != "none"
        )


def test_merge_decodes_chunks_it_cannot_copy_as_stored(tmp_path: Path):
    images, posmaps, records = _samples(3)
    write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions(compression="gzip"))
    with h5py.File(tmp_path / "s.h5", "a") as f:  # another tool's layout: contiguous maps
        stored = f["posmaps"][...]
        _replace(f, "posmaps", stored)
        assert f["posmaps"].chunks is None
    merge_shards([tmp_path / "s.h5"], tmp_path / "out.h5", _uv(), ATTRS)
    with PositionMapFile(tmp_path / "out.h5") as f:
        for i in range(3):
            assert np.abs(f.posmap(i) - posmaps[i]).max() <= 1 / 16
            np.testing.assert_array_equal(f.image(i), images[i])


def test_interrupted_shard_write_leaves_nothing_under_final_name(tmp_path: Path, monkeypatch):
    images, posmaps, records = _samples(3)
    shard = tmp_path / "shard_0007.h5"

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(h5store, "_write_records", boom)
    with pytest.raises(RuntimeError, match="killed"):
        write_shard(shard, images, posmaps, records, StorageOptions())
    assert not shard.exists()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    # a stale temporary from a killed task is neither visible nor an obstacle, and no later writer
    # opens it (each writes its own temporary; the build removes stale ones under its lock)
    stale = tmp_path / f".{shard.name}.4242.0badf00d.tmp"
    stale.write_bytes(b"half-written")
    with pytest.raises(DataError):
        read_shard_names(shard)
    write_shard(shard, images, posmaps, records, StorageOptions())
    assert stale.read_bytes() == b"half-written"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([stale.name, shard.name])
    assert read_shard_names(shard) == [r.name for r in records]


def test_interrupted_merge_leaves_nothing_under_final_name(tmp_path: Path, monkeypatch):
    images, posmaps, records = _samples(2)
    write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions())
    monkeypatch.setattr(
        h5store, "_copy_chunked", lambda *a: (_ for _ in ()).throw(RuntimeError("killed"))
    )
    with pytest.raises(RuntimeError):
        merge_shards([tmp_path / "s.h5"], tmp_path / "out.h5", _uv(), ATTRS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_merge_rejects_shards_with_different_storage(tmp_path: Path):
    images, posmaps, records = _samples(2)
    write_shard(tmp_path / "a.h5", images, posmaps, records, StorageOptions(posmap_dtype="float16"))
    write_shard(tmp_path / "b.h5", images, posmaps, records, StorageOptions(posmap_dtype="float32"))
    with pytest.raises(DataError) as err:
        merge_shards([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "out.h5", _uv(), ATTRS)
    assert err.value.path == tmp_path / "b.h5" and err.value.field == "posmap_dtype"


def test_write_shard_rejects_bad_input(tmp_path: Path):
    images, posmaps, records = _samples(2)
    with pytest.raises(DataError) as err:
        write_shard(
            tmp_path / "s.h5", images.astype(np.float32), posmaps, records, StorageOptions()
        )
    assert err.value.field == "images"
    bad = posmaps.copy()
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        write_shard(tmp_path / "s.h5", images, bad, records, StorageOptions())
    records[1].extras = {}
    with pytest.raises(DataError) as err:
        write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions())
    assert err.value.field == "records[1].extras"
    assert not (tmp_path / "s.h5").exists()
    with pytest.raises(ValueError):
        StorageOptions(compression="zstd")
    with pytest.raises(ValueError):
        StorageOptions(posmap_dtype="bfloat16")


def test_validate_file_names_file_and_field(tmp_path: Path, merged16: Path):
    def broken(edit) -> Path:
        path = tmp_path / f"broken{len(list(tmp_path.iterdir()))}.h5"
        path.write_bytes(merged16.read_bytes())
        with h5py.File(path, "a") as f:
            edit(f)
        return path

    cases = [
        (lambda f: f.__delitem__("uv/kpt_uv"), "uv/kpt_uv"),
        (lambda f: f.__delitem__("posmaps"), "posmaps"),
        (lambda f: f.attrs.__delitem__("model_checksum"), "model_checksum"),
        (lambda f: _replace(f, "shape_para", np.zeros((N - 1, 199))), "shape_para"),
        (
            lambda f: _replace(f, "extras/landmarks_gt", np.zeros((N + 1, 68, 3))),
            "extras/landmarks_gt",
        ),
        (lambda f: f.attrs.__setitem__("split", "val"), "split"),
        (lambda f: f.attrs.__setitem__("format_version", 2), "format_version"),
    ]
    for edit, field in cases:
        path = broken(edit)
        with pytest.raises(DataError) as err:
            validate_file(path)
        assert err.value.path == path and err.value.field == field
        assert str(path) in str(err.value) and field in str(err.value)
        with pytest.raises(DataError):
            PositionMapFile(path)

    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DataError) as err:
        validate_file(junk)
    assert err.value.path == junk and err.value.field is None


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)


def test_float16_encoding_rounds_once_from_the_exact_difference():
    from uvgen.h5store import encode_posmap_into, encode_posmaps

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
