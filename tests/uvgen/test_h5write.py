"""uvgen.h5write: shards (atomic, checked) and their merge."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.uvgen.h5_samples import ATTRS, N, build, replace_dataset, samples, uv_data
from uvgen import h5write
from uvgen.formats.errors import DataError
from uvgen.h5codec import PosmapPrecisionWarning, StorageOptions
from uvgen.h5store import PositionMapFile, read_shard_names
from uvgen.h5write import merge_shards, write_shard


def test_out_of_range_values_warn_and_are_counted(tmp_path: Path):
    images, posmaps, records = samples(2)
    posmaps[0, 0, 0, 0] = 384.0
    posmaps[1, 5, 5, 2] = -128.0
    posmaps[1, 6, 5, 2] = -127.99  # still safe
    with pytest.warns(PosmapPrecisionWarning, match="2 position-map values"):
        write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions())
    merge_shards([tmp_path / "s.h5"], tmp_path / "out.h5", uv_data(), ATTRS)
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
        build(tmp_path, sizes, storage, f"m{k}.h5")
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
    images, posmaps, records = samples(3)
    write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions(compression="gzip"))
    with h5py.File(tmp_path / "s.h5", "a") as f:  # another tool's layout: contiguous maps
        stored = f["posmaps"][...]
        replace_dataset(f, "posmaps", stored)
        assert f["posmaps"].chunks is None
    merge_shards([tmp_path / "s.h5"], tmp_path / "out.h5", uv_data(), ATTRS)
    with PositionMapFile(tmp_path / "out.h5") as f:
        for i in range(3):
            assert np.abs(f.posmap(i) - posmaps[i]).max() <= 1 / 16
            np.testing.assert_array_equal(f.image(i), images[i])


def test_interrupted_shard_write_leaves_nothing_under_final_name(tmp_path: Path, monkeypatch):
    images, posmaps, records = samples(3)
    shard = tmp_path / "shard_0007.h5"

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(h5write, "_write_records", boom)
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
    images, posmaps, records = samples(2)
    write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions())
    monkeypatch.setattr(
        h5write, "_copy_chunked", lambda *a: (_ for _ in ()).throw(RuntimeError("killed"))
    )
    with pytest.raises(RuntimeError):
        merge_shards([tmp_path / "s.h5"], tmp_path / "out.h5", uv_data(), ATTRS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_merge_rejects_shards_with_different_storage(tmp_path: Path):
    images, posmaps, records = samples(2)
    write_shard(tmp_path / "a.h5", images, posmaps, records, StorageOptions(posmap_dtype="float16"))
    write_shard(tmp_path / "b.h5", images, posmaps, records, StorageOptions(posmap_dtype="float32"))
    with pytest.raises(DataError) as err:
        merge_shards([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "out.h5", uv_data(), ATTRS)
    assert err.value.path == tmp_path / "b.h5" and err.value.field == "posmap_dtype"


def test_write_shard_rejects_bad_input(tmp_path: Path):
    images, posmaps, records = samples(2)
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


def test_merge_refuses_weights_where_classes_belong(tmp_path: Path):
    images, posmaps, records = samples(1)
    write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions())
    good = uv_data()
    for bad, reason in (
        (good.weight_class.astype(np.float32) * 3, "integer class codes"),
        (np.full_like(good.weight_class, 7), "0..3"),
    ):
        uv = type(good)(bad, good.face_mask, good.kpt_uv, good.face_ind)
        with pytest.raises(DataError, match=reason) as err:
            merge_shards([tmp_path / "s.h5"], tmp_path / "out.h5", uv, ATTRS)
        assert err.value.field == "uv/weight_class"
    assert not (tmp_path / "out.h5").exists()
