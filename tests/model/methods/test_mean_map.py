"""model.methods.mean_map: the constant method, the mean training map for every test image."""

from __future__ import annotations

import numpy as np

from model.methods.mean_map import mean_map_maps
from uvgen.h5codec import StorageOptions
from uvgen.h5store import SampleRecord, UVData
from uvgen.h5write import merge_shards, write_shard

MEAN_MAP_SIZE = 32


def _uv_file(path, maps: np.ndarray, split: str):
    n = len(maps)
    recs = [
        SampleRecord(
            f"s{i:03d}.mat",
            "t",
            np.zeros(199),
            np.zeros(29),
            np.zeros(7),
            np.eye(3),
            np.full(3, 0.5),
            0.0,
            0.0,
            0.0,
        )
        for i in range(n)
    ]
    shard = path.with_name(path.name + ".shard.h5")
    write_shard(
        shard,
        np.zeros((n, MEAN_MAP_SIZE, MEAN_MAP_SIZE, 3), np.uint8),
        maps.astype(np.float32),
        recs,
        StorageOptions(posmap_dtype="float32"),
    )
    kpt_uv = np.zeros((2, 68), np.int32)
    merge_shards(
        [shard],
        path,
        UVData(
            np.ones((MEAN_MAP_SIZE, MEAN_MAP_SIZE), np.uint8),
            np.ones((MEAN_MAP_SIZE, MEAN_MAP_SIZE), bool),
            kpt_uv,
            np.arange(MEAN_MAP_SIZE**2),
        ),
        {"model_checksum": "x", "params": {}, "split": split},
    )
    shard.unlink()
    return path


def test_mean_map_is_the_mean_training_map_for_every_test_image(tmp_path) -> None:
    rng = np.random.default_rng(0)
    train = rng.uniform(0, 250, (5, MEAN_MAP_SIZE, MEAN_MAP_SIZE, 3))
    train_file = _uv_file(tmp_path / "train.h5", train, "train")
    test_file = _uv_file(
        tmp_path / "test.h5", rng.uniform(0, 250, (7, MEAN_MAP_SIZE, MEAN_MAP_SIZE, 3)), "test"
    )
    batches = list(mean_map_maps(train_file, test_file, 3, "cpu"))
    assert [len(b) for b in batches] == [3, 3, 1]
    maps = np.concatenate(batches)
    expect = train.astype(np.float32).astype(np.float64).mean(axis=0)
    assert np.allclose(maps, expect[None], atol=1e-3)
