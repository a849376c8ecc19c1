"""Tests for the predict stage (pipeline/predict.py) on a tiny test file and an untrained PRN:
parameters in, predictions files and the manifest out."""

from __future__ import annotations

import pytest

from eval.predictions import PredictionsFile
from model.checkpoint import save_weights
from model.prnet import PRNet
from pipeline.config import PredictParams
from pipeline.predict import run
from tests.tiny_data import write_uv_test_file
from uvgen.formats.errors import DataError


def test_every_method_needs_its_checkpoint_unless_skipped(tmp_path):
    path, _, _ = write_uv_test_file(tmp_path, n=3)
    save_weights(tmp_path / "prn.pt", PRNet(width=2, in_size=32))
    methods = [
        {"name": "PRN", "kind": "prn", "checkpoint": str(tmp_path / "prn.pt")},
        {"name": "3DDFA", "kind": "3ddfa", "checkpoint": str(tmp_path / "absent.pt")},
    ]
    params = dict(test_file=path, out_dir=tmp_path / "pred", batch_size=2, device="auto")
    with pytest.raises(DataError, match="absent.pt"):  # default: every method required
        run(PredictParams(**params, methods=methods, skip_missing=False))
    manifest = run(PredictParams(**params, methods=methods, skip_missing=True))
    assert [m["name"] for m in manifest["methods"]] == ["PRN"]
    assert manifest["skipped"][0]["name"] == "3DDFA"
    with PredictionsFile(tmp_path / "pred" / "PRN.h5") as f:
        assert len(f) == 3 and f.meta["device"] in ("cpu", "cuda")  # 'auto' resolved
