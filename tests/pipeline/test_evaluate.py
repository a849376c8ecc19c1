"""Tests for the evaluate stage (pipeline/evaluate.py) after the predict stage on a tiny test file:
parameters in, the report out (predict alone: tests/pipeline/test_predict.py)."""

from __future__ import annotations

import os

import pytest

from pipeline.config import EvaluateParams
from pipeline.evaluate import run as run_evaluate
from pipeline.predict import run as run_predict
from tests.tiny_data import predict_params
from uvgen.resumable import BuildLockedError, exclusive_lock


def test_predict_and_evaluate_stages_end_to_end(tmp_path):
    p = predict_params(tmp_path, skip_missing=True)
    run_predict(p)
    files = run_evaluate(
        EvaluateParams(
            test_file=p.test_file,
            predictions_dir=tmp_path / "pred",
            out_dir=tmp_path / "eval",
            external=[],
            max_error=0.1,
            ced_points=11,
            chunk=2,
            recon_scale=False,
            on_unmatched="report",
            data_dir=None,
        )
    )
    md = files.markdown.read_text()
    assert "| **PRN** | measured |" in md and "3DDFA: not evaluated" in md
    assert files.metrics_json.is_file() and len(files.figures) == 6
    ced = files.ced_csv["nme_2d_68"].read_text().splitlines()
    # the skipped method's column stays, empty
    assert ced[0] == "nme,PRN,3DDFA" and ced[1].endswith(",")


def test_a_second_run_into_the_same_folder_stops_at_once(tmp_path):
    out = tmp_path / "eval"
    p = EvaluateParams(
        test_file=tmp_path / "test.h5",
        predictions_dir=tmp_path / "pred",
        out_dir=out,
        external=[],
        max_error=0.1,
        ced_points=11,
        chunk=2,
        recon_scale=False,
        on_unmatched="report",
        data_dir=None,
    )
    with exclusive_lock(out, "evaluation"), pytest.raises(BuildLockedError) as err:
        run_evaluate(p)
    assert str(err.value) == f"another evaluation of {out} is running (pid {os.getpid()})"
    assert not out.exists()
