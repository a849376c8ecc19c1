"""Tests for the predict stage (pipeline/predict.py) on a tiny test file and an untrained PRN:
parameters in, predictions files and the manifest out."""

from __future__ import annotations

import os

import pytest

from eval.predictions import PredictionsFile
from pipeline.predict import run
from tests.tiny_data import predict_params
from uvgen.formats.errors import DataError
from uvgen.resumable import BuildLockedError, exclusive_lock


def test_every_method_needs_its_checkpoint_unless_skipped(tmp_path):
    with pytest.raises(DataError, match="absent.pt"):  # default: every method required
        run(predict_params(tmp_path / "strict", skip_missing=False))
    manifest = run(predict_params(tmp_path, skip_missing=True, device="auto"))
    assert [m["name"] for m in manifest["methods"]] == ["PRN"]
    assert manifest["skipped"][0]["name"] == "3DDFA"
    with PredictionsFile(tmp_path / "pred" / "PRN.h5") as f:
        assert len(f) == 3 and f.meta["device"] in ("cpu", "cuda")  # 'auto' resolved


def test_a_second_run_into_the_same_folder_stops_at_once(tmp_path):
    p = predict_params(tmp_path, skip_missing=True)
    with exclusive_lock(p.out_dir, "prediction"), pytest.raises(BuildLockedError) as err:
        run(p)
    assert str(err.value) == f"another prediction of {p.out_dir} is running (pid {os.getpid()})"
    assert not p.out_dir.exists()
