"""Tests for eval.evaluate_all: the evaluate stage's call (the stage end to end:
tests/pipeline/test_evaluate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eval.decode import decode_maps
from eval.evaluate_all import evaluate_predictions
from eval.predictions import Predictions, write_predictions
from tests.tiny_data import write_uv_test_file
from uvgen.formats.errors import DataError


def _predicted(tmp_path, skipped=()):
    """The test file and a predictions folder holding its ground truth as method 'GT'."""
    path, maps, transforms = write_uv_test_file(tmp_path, n=3)
    from eval.evaluate import GroundTruthFile

    with GroundTruthFile(path) as gt:
        lm, dense = decode_maps(maps, transforms, gt.kpt_uv, gt.face_ind)
        names = gt.names
    pred = tmp_path / "pred"
    write_predictions(pred / "GT.h5", Predictions("GT", names, lm, dense))
    manifest = {"methods": [{"name": "GT", "file": "GT.h5"}], "skipped": list(skipped)}
    (pred / "manifest.json").write_text(json.dumps(manifest))
    return path, pred


def test_ground_truth_as_a_method_scores_zero_and_skipped_methods_keep_a_column(tmp_path):
    path, pred = _predicted(tmp_path, skipped=[{"name": "Gone", "reason": "no checkpoint"}])
    files = evaluate_predictions(path, pred, tmp_path / "eval", ced_points=11)
    per_image = (tmp_path / "eval" / "per_image.csv").read_text().splitlines()
    assert per_image[0].startswith("name,yaw,GT/nme_2d_68")
    values = np.array([row.split(",")[2:] for row in per_image[1:]], dtype=np.float64)
    assert np.all(values < 1e-5)
    assert "Gone: not evaluated (no checkpoint)" in files.markdown.read_text()
    assert files.ced_csv["nme_2d_68"].read_text().splitlines()[0] == "nme,GT,Gone"


def test_external_entries_must_be_mappings(tmp_path):
    path, pred = _predicted(tmp_path)
    with pytest.raises(DataError, match=r"evaluate.external\[0\]"):
        evaluate_predictions(path, pred, tmp_path / "eval", external=["GT.h5"])
