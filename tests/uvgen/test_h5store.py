"""uvgen.h5store: the merged file read back and validated (the torch Dataset is tested in
tests/model/test_h5dataset.py)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.uvgen.h5_samples import ATTRS, N, build, replace_dataset, samples, uv_data
from uvgen.formats.errors import DataError
from uvgen.h5codec import StorageOptions
from uvgen.h5store import PositionMapFile, validate_file
from uvgen.h5write import merge_shards, write_shard


@pytest.fixture(scope="module")
def merged16(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("h5"), [5, 7], StorageOptions(posmap_dtype="float16"))


def test_round_trip_float16(merged16: Path):
    images, posmaps, records = samples()
    uv = uv_data()
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
        for key in ("weight_class", "weight_mask", "face_mask", "kpt_uv", "face_ind"):
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
    images, posmaps, records = samples(4)
    posmaps[0, 0, 0] = [-1000.5, 5000.25, 1e-3]  # far outside the float16-safe range
    write_shard(tmp_path / "s.h5", images, posmaps, records, StorageOptions(posmap_dtype="float32"))
    merge_shards([tmp_path / "s.h5"], tmp_path / "out.h5", uv_data(), ATTRS)
    with PositionMapFile(tmp_path / "out.h5") as f:
        assert f.attrs["posmap_offset"] == 0.0
        for i in range(4):
            np.testing.assert_array_equal(f.posmap(i), posmaps[i])
            np.testing.assert_array_equal(f.image(i), images[i])


def test_file_stores_weight_classes_and_their_paper_weights(merged16: Path):
    with h5py.File(merged16, "r") as f:
        classes, weights = f["uv/weight_class"], f["uv/weight_mask"]
        assert classes.dtype == np.uint8 and weights.dtype == np.float32
        assert classes.attrs["classes"] == "0 outside, 1 face, 2 eye_nose_mouth, 3 keypoint"
        np.testing.assert_array_equal(weights[...], np.where(classes[...] == 1, 3.0, 0.0))


def test_older_file_with_weight_mask_alone_reads_its_classes(tmp_path: Path, merged16: Path):
    """A file written before ``uv/weight_class`` existed: the classes of its paper weights."""
    old = tmp_path / "old.h5"
    old.write_bytes(merged16.read_bytes())
    with h5py.File(old, "a") as f:
        del f["uv/weight_class"]
        mask = f["uv/weight_mask"][...]
        mask[0, :4] = [0.0, 3.0, 4.0, 16.0]
        replace_dataset(f, "uv/weight_mask", mask)
    validate_file(old)
    with PositionMapFile(old) as f:
        expected = uv_data().weight_class.copy()
        expected[0, :4] = [0, 1, 2, 3]
        np.testing.assert_array_equal(f.uv.weight_class, expected)
        assert f.uv.weight_class.dtype == np.uint8
        np.testing.assert_array_equal(f.uv.weight_mask, mask)
    with h5py.File(old, "a") as f:
        mask[5, 5] = 11 / 3  # a blend: no class can be told
        replace_dataset(f, "uv/weight_mask", mask)
    with pytest.raises(DataError) as err:
        PositionMapFile(old)
    assert err.value.path == old and err.value.field == "uv/weight_mask"
    assert "none of the paper's weights 0/3/4/16" in str(err.value)


def test_validate_file_names_file_and_field(tmp_path: Path, merged16: Path):
    def broken(edit) -> Path:
        path = tmp_path / f"broken{len(list(tmp_path.iterdir()))}.h5"
        path.write_bytes(merged16.read_bytes())
        with h5py.File(path, "a") as f:
            edit(f)
        return path

    cases = [
        (lambda f: f.__delitem__("uv/kpt_uv"), "uv/kpt_uv"),
        (
            lambda f: replace_dataset(f, "uv/weight_class", np.full((256, 256), 4)),
            "uv/weight_class",
        ),
        (lambda f: replace_dataset(f, "uv/weight_class", np.zeros((256, 255))), "uv/weight_class"),
        (lambda f: f.__delitem__("posmaps"), "posmaps"),
        (lambda f: f.attrs.__delitem__("model_checksum"), "model_checksum"),
        (lambda f: replace_dataset(f, "shape_para", np.zeros((N - 1, 199))), "shape_para"),
        (
            lambda f: replace_dataset(f, "extras/landmarks_gt", np.zeros((N + 1, 68, 3))),
            "extras/landmarks_gt",
        ),
        (lambda f: f.attrs.__setitem__("split", "val"), "split"),
        (lambda f: f.attrs.__setitem__("format_version", 2), "format_version"),
        (lambda f: f.attrs.__setitem__("uv_size", 128), "uv_size"),
        (lambda f: f.attrs.__setitem__("uv_size", "256"), "uv_size"),
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


def test_the_uv_size_is_recorded_and_old_files_read_as_256(tmp_path: Path, merged16: Path):
    with PositionMapFile(merged16) as f:
        assert f.uv_size == 256 and int(f.attrs["uv_size"]) == 256
    old = tmp_path / "old.h5"  # written before the attribute existed
    old.write_bytes(merged16.read_bytes())
    with h5py.File(old, "a") as f:
        del f.attrs["uv_size"]
    validate_file(old)
    with PositionMapFile(old) as f:
        assert "uv_size" not in f.attrs and f.uv_size == 256
    images, posmaps, records = samples(2)
    write_shard(tmp_path / "shard.h5", images, posmaps, records, StorageOptions())
    with pytest.raises(ValueError, match="attrs uv_size 128 but the shards' maps are 256x256"):
        merge_shards(
            [tmp_path / "shard.h5"], tmp_path / "b.h5", uv_data(), {**ATTRS, "uv_size": 128}
        )
