"""``prnet export-posmaps --layout face3d``: NAME.jpg + NAME.npy per sample, maps byte-exact from
the stored values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import cli
from tests.tiny_data import write_uv_test_file
from tests.uvgen.h5_samples import ATTRS, samples, uv_data
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import read_jpeg
from uvgen.h5codec import StorageOptions
from uvgen.h5store import PositionMapFile
from uvgen.h5write import merge_shards, write_shard
from uvgen.posmap_export import export_posmaps, export_stem


def _uv_file(folder: Path, names: list[str], dtype: str = "float16") -> Path:
    _, posmaps, records = samples(len(names))
    y, x = np.mgrid[0:256, 0:256]
    images = np.stack([np.stack([x, y, (x + y) // 4 + 8 * k], -1) for k in range(len(names))])
    images = images.astype(np.uint8)  # smooth crops: JPEG keeps them within a few levels
    for record, name in zip(records, names):
        record.name = name
    shard = folder / "shard.h5"
    write_shard(shard, images, posmaps, records, StorageOptions(posmap_dtype=dtype))
    merge_shards([shard], folder / "uv.h5", uv_data(), ATTRS)
    return folder / "uv.h5"


def test_float32_maps_are_written_exactly(tmp_path) -> None:
    h5, maps, _ = write_uv_test_file(tmp_path, n=3, size=32)
    out = tmp_path / "out"
    written = export_posmaps(h5, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"image{i:05d}{ext}" for i in range(3) for ext in (".jpg", ".npy")
    )
    for i, npy in enumerate(written):
        m = np.load(npy)
        assert m.dtype == np.float32 and m.shape == (32, 32, 3)
        assert m.tobytes() == maps[i].tobytes()
        assert read_jpeg(npy.with_suffix(".jpg")).shape == (32, 32, 3)


def test_float16_maps_equal_the_readers_values_and_folders_are_kept(tmp_path) -> None:
    """Stored float16 maps come out as the reader decodes them (offset added in float32); 300W-LP's
    flipped subsets reuse stems, so a name's folders are kept; crops within JPEG's loss."""
    names = ["AFW/AFW_1_1_0.mat", "AFW_Flip/AFW_1_1_0.mat", "IBUG_image_008_1_0"]
    h5 = _uv_file(tmp_path, names)
    out = tmp_path / "out"
    written = export_posmaps(h5, out, jpeg_quality=100)
    assert [p.relative_to(out).as_posix() for p in written] == [
        "AFW/AFW_1_1_0.npy",
        "AFW_Flip/AFW_1_1_0.npy",
        "IBUG_image_008_1_0.npy",
    ]
    with PositionMapFile(h5) as f:
        for i, npy in enumerate(written):
            assert np.load(npy).tobytes() == f.posmap(i).tobytes()
            crop = read_jpeg(npy.with_suffix(".jpg")).astype(np.int16)
            assert crop.shape == f.image(i).shape
            assert np.abs(crop - f.image(i)).max() <= 4
    assert not list(out.rglob("*_posmap.jpg"))


def test_clashing_or_unsafe_names_are_refused(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    h5 = _uv_file(tmp_path / "a", ["x/s.mat", "x/s.jpg"])
    with pytest.raises(DataError, match=r"names.*'x/s.mat' and 'x/s.jpg'.*x/s\.npy"):
        export_posmaps(h5, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    for bad in ("../up.mat", "/abs.mat", ""):
        with pytest.raises(ValueError):
            export_stem(bad)
    assert str(export_stem("a.b")) == "a.b"


def test_command(tmp_path, capsys) -> None:
    h5, maps, _ = write_uv_test_file(tmp_path, n=2, size=32)
    rc = cli.main(["export-posmaps", str(h5), "--out", str(tmp_path / "o"), "--layout", "face3d"])
    assert rc == 0 and "2 samples" in capsys.readouterr().out
    assert np.load(tmp_path / "o" / "image00001.npy").tobytes() == maps[1].tobytes()
    rc = cli.main(["export-posmaps", str(tmp_path / "none.h5"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "none.h5" in err and len(err.strip().splitlines()) == 1
