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


def evaluate_params(test_file, root, **given) -> EvaluateParams:
    """The stage's parameters over ``root/pred`` -> ``root/eval`` (small CED, chunks of 2)."""
    base = dict(
        test_file=test_file,
        predictions_dir=root / "pred",
        out_dir=root / "eval",
        external=[],
        max_error=0.1,
        ced_points=11,
        chunk=2,
        recon_scale=False,
        on_unmatched="report",
        data_dir=None,
        model_dir=None,
    )
    return EvaluateParams(**{**base, **given})


def test_predict_and_evaluate_stages_end_to_end(tmp_path):
    p = predict_params(tmp_path, skip_missing=True)
    run_predict(p)
    files = run_evaluate(evaluate_params(p.test_file, tmp_path))
    md = files.markdown.read_text()
    assert "| **PRN** | measured |" in md and "3DDFA: not evaluated" in md
    assert files.metrics_json.is_file() and len(files.figures) == 6
    ced = files.ced_csv["nme_2d_68"].read_text().splitlines()
    # the skipped method's column stays, empty
    assert ced[0] == "nme,PRN,3DDFA" and ced[1].endswith(",")


def test_a_second_run_into_the_same_folder_stops_at_once(tmp_path):
    out = tmp_path / "eval"
    p = evaluate_params(tmp_path / "test.h5", tmp_path)
    with exclusive_lock(out, "evaluation"), pytest.raises(BuildLockedError) as err:
        run_evaluate(p)
    assert str(err.value) == f"another evaluation of {out} is running (pid {os.getpid()})"
    assert not out.exists()


def test_stage_with_the_aflw_folder_keeps_the_images_the_build_rejected(tmp_path):
    """evaluate.data_dir: every image of the folder is in the 68-point tables; the one uvgen@test
    rejected (a broken Shape_Para) has no prediction and no dense ground truth: a named failure.
    With evaluate.model_dir the head-pose table is written."""
    import numpy as np
    import pandas as pd
    import scipy.io as sio

    from model.checkpoint import save_weights
    from model.prnet import PRNet
    from pipeline.config import PredictParams
    from uvgen.formats.bfm import save_bfm
    from uvgen.h5codec import StorageOptions
    from uvgen.synth.dataset import write_synthetic_set
    from uvgen.synth.facemodel import make_face_model
    from uvgen.uvbuild import BuildSettings, build_split

    save_bfm(make_face_model(n_vertices=1500, seed=0), tmp_path / "model")
    data = tmp_path / "AFLW2000"
    write_synthetic_set("aflw2000", tmp_path / "model", data, 4, 256, seed=2)
    broken = sorted(data.glob("*.mat"))[1]
    mat = sio.loadmat(broken)
    mat["Shape_Para"] = mat["Shape_Para"][:10]
    sio.savemat(broken, {k: v for k, v in mat.items() if not k.startswith("_")})
    test_file = tmp_path / "test.h5"
    report = build_split(
        BuildSettings(
            split="test",
            model_dir=tmp_path / "model",
            source_root=data,
            out_path=test_file,
            rejects_path=tmp_path / "rejects.csv",
            seed=0,
            jitter=False,
            task_size=10,
            storage=StorageOptions(),
            workers=0,
        )
    )
    assert report.written == 3 and len(report.rejects) == 1
    save_weights(tmp_path / "prn.pt", PRNet(width=2))
    run_predict(
        PredictParams(
            test_file=test_file,
            out_dir=tmp_path / "pred",
            batch_size=2,
            device="cpu",
            methods=[{"name": "PRN", "kind": "prn", "checkpoint": str(tmp_path / "prn.pt")}],
            skip_missing=False,
        )
    )
    files = run_evaluate(
        evaluate_params(test_file, tmp_path, data_dir=data, model_dir=tmp_path / "model")
    )
    per_image = pd.read_csv(files.per_image_csv, dtype={"name": str}).set_index("name")
    assert len(per_image) == 4 and broken.stem in per_image.index
    assert np.isnan(per_image.loc[broken.stem, "PRN/nme_2d_68"])
    md = files.markdown.read_text()
    assert f"`{broken.stem}`: no dense ground truth" in md
    assert "## Head pose, mean absolute error (degrees)" in md
    assert (tmp_path / "eval" / "pose_table.csv").is_file()
