"""Tests for eval.methods: running a method into a predictions file, the manifest, its errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from eval.evaluate import GroundTruthFile, evaluate
from eval.methods import MANIFEST, predict_method, predict_methods, read_manifest
from eval.metrics import bbox_size
from eval.predictions import PredictionsFile
from tests.tiny_data import write_uv_test_file
from uvgen.formats.errors import DataError


@dataclass(frozen=True)
class Method:
    name: str
    kind: str
    checkpoint: Path


def test_predict_method_writes_decoded_maps(tmp_path):
    path, maps, transforms = write_uv_test_file(tmp_path, n=5)

    shift = np.float32([6.0, 8.0, 0.0])  # a (6, 8) px crop shift

    def shifted(
        checkpoint, test_file, batch_size, device
    ):
        for start in range(0, len(maps), batch_size):
            yield maps[start : start + batch_size] + shift

    entry = predict_method(
        Method("Fake", "prn", tmp_path / "none.pt"),
        path,
        tmp_path / "Fake.h5",
        2,
        "cpu",
        predict_maps=shifted,
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

    def short(checkpoint, test_file, batch_size, device):
        yield maps[:2]

    with pytest.raises(DataError, match="2 maps for 3 test images"):
        predict_method(
            Method("Short", "prn", tmp_path / "w.pt"),
            path,
            tmp_path / "Short.h5",
            2,
            "cpu",
            predict_maps=short,
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
