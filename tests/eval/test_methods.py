"""Tests for eval.methods: running a method into a predictions file, the manifest, its errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from eval.evaluate import GroundTruthFile, evaluate
from eval.methods import MANIFEST, mean_map_maps, predict_method, predict_methods, read_manifest
from eval.metrics import bbox_size
from eval.predictions import PredictionsFile
from pipeline.config import PredictMethod
from tests.tiny_data import write_uv_test_file
from uvgen.formats.errors import DataError
from uvgen.h5codec import StorageOptions
from uvgen.h5store import SampleRecord, UVData
from uvgen.h5write import merge_shards, write_shard


@dataclass(frozen=True)
class Method:
    name: str
    kind: str
    checkpoint: Path


def test_predict_method_writes_decoded_maps(tmp_path):
    path, maps, transforms = write_uv_test_file(tmp_path, n=5)

    shift = np.float32([6.0, 8.0, 0.0])  # a (6, 8) px crop shift

    def adapter(method, test_file, batch_size, device):  # returns the ground-truth maps, shifted
        for start in range(0, len(maps), batch_size):
            yield maps[start : start + batch_size] + shift

    entry = predict_method(
        Method("Fake", "prn", tmp_path / "none.pt"),
        path,
        tmp_path / "Fake.h5",
        2,
        "cpu",
        adapter=adapter,
    )
    assert entry["n_images"] == 5 and entry["file"] == "Fake.h5"
    with GroundTruthFile(path) as gt, PredictionsFile(tmp_path / "Fake.h5") as pred:
        assert (
            pred.method == "Fake" and pred.meta["device"] == "cpu" and np.all(pred.runtime_s >= 0)
        )
        (res,) = evaluate(gt, [pred])
        # 10 crop px = 10 / scale original px; NME = that / the 68 box
        scale = transforms[:, 0, 0]
        expect = 10.0 / scale / bbox_size(gt.landmarks)
    assert np.allclose(res.per_image["nme_2d_68"], expect, rtol=1e-4)
    assert np.allclose(res.per_image["recon_3d_dense"], 0, atol=1e-5)


def test_predict_method_refuses_too_few_maps_and_leaves_no_file(tmp_path):
    path, maps, _ = write_uv_test_file(tmp_path, n=3)

    def short(method, test_file, batch_size, device):
        yield maps[:2]

    with pytest.raises(DataError, match="2 maps for 3 test images"):
        predict_method(
            Method("Short", "prn", tmp_path / "w.pt"),
            path,
            tmp_path / "Short.h5",
            2,
            "cpu",
            adapter=short,
        )
    assert not (tmp_path / "Short.h5").exists() and not list(tmp_path.glob(".Short.h5.*.tmp"))


def test_missing_checkpoint_fails_unless_skipped(tmp_path):
    path, _, _ = write_uv_test_file(tmp_path, n=2)
    methods = [Method("3DDFA", "3ddfa", tmp_path / "absent.pt")]
    with pytest.raises(DataError, match="absent.pt"):
        predict_methods(methods, path, tmp_path / "pred", 2, "cpu")
    manifest = predict_methods(methods, path, tmp_path / "pred", 2, "cpu", skip_missing=True)
    assert manifest["methods"] == [] and manifest["skipped"][0]["name"] == "3DDFA"
    assert read_manifest(tmp_path / "pred") == manifest
    with pytest.raises(DataError, match="test file not found"):
        predict_methods(
            methods, tmp_path / "nope.h5", tmp_path / "pred", 2, "cpu", skip_missing=True
        )


def test_read_manifest_names_the_file(tmp_path):
    with pytest.raises(DataError, match="run the predict stage first"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(DataError, match="not JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"methods": "PRN"}))
    with pytest.raises(DataError, match="methods"):
        read_manifest(tmp_path)


# --- the constant predictor (kind ``mean_map``): the mean training map for every image

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
    batches = list(
        mean_map_maps(PredictMethod("Mean-map", "mean_map", train_file), test_file, 3, "cpu")
    )
    assert [len(b) for b in batches] == [3, 3, 1]
    maps = np.concatenate(batches)
    expect = train.astype(np.float32).astype(np.float64).mean(axis=0)
    assert np.allclose(maps, expect[None], atol=1e-3)
