"""Tests for the predict stage (pipeline/predict.py) on a tiny test file and an untrained PRN:
parameters in, predictions files and the manifest out."""

from __future__ import annotations

import pytest

from eval.predictions import PredictionsFile
from pipeline.predict import run
from tests.tiny_data import predict_params
from uvgen.formats.errors import DataError


def test_every_method_needs_its_checkpoint_unless_skipped(tmp_path):
    with pytest.raises(DataError, match="absent.pt"):  # default: every method required
        run(predict_params(tmp_path / "strict", skip_missing=False))
    manifest = run(predict_params(tmp_path, skip_missing=True, device="auto"))
    assert [m["name"] for m in manifest["methods"]] == ["PRN"]
    assert manifest["skipped"][0]["name"] == "3DDFA"
    with PredictionsFile(tmp_path / "pred" / "PRN.h5") as f:
        assert len(f) == 3 and f.meta["device"] in ("cpu", "cuda")  # 'auto' resolved
